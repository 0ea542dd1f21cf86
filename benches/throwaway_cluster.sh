# Sourced by the benchmark scripts that need a PostgreSQL cluster of their own:
#
#   . "$HERE/../throwaway_cluster.sh" NAME
#
# starts one in a new directory /tmp/NAME.XXXXXX on a free port, with the newest PostgreSQL
# server binaries installed, and stops and removes it when the script exits. Sets PGBIN, W
# (the directory) and PORT. Runs as root; PostgreSQL runs as the postgres user (via runuser),
# since initdb refuses to run as root.
[ "$(id -u)" = 0 ] || { echo "$0: run it as root (PostgreSQL runs as the postgres user)"; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
W=$(mktemp -d "/tmp/$1.XXXXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  [ -f $W/pgdata/postmaster.pid ] && runuser -u postgres -- $PGBIN/pg_ctl -D $W/pgdata -m fast -w stop >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

chmod 755 $W && mkdir $W/pgdata && chown postgres $W $W/pgdata && chmod 700 $W/pgdata
runuser -u postgres -- $PGBIN/initdb -D $W/pgdata -U postgres --auth=trust >/dev/null || exit 1
runuser -u postgres -- $PGBIN/pg_ctl -D $W/pgdata -l $W/pg.log -w \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$W" start >/dev/null || exit 1
