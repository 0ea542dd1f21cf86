//! Reading a request body with a size limit AND a deadline: without the deadline, a client that
//! sends the head of a large POST and then a byte now and then holds its connection (and a
//! descriptor) for as long as it likes.

use std::time::Duration;

use actix_web::web::{self, Bytes};

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("could not read body: {0}")]
    Unreadable(String),
    /// Not all in within `REQUEST_BODY_TIMEOUT`: answered 408, and the connection is closed
    /// (actix closes a connection whose body was not read to its end).
    #[error("the request body did not arrive within {0:?}")]
    TimedOut(Duration),
}

/// The whole body, at most `limit` bytes, all in within `deadline` of now.
pub(crate) async fn read(
    payload: web::Payload,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, payload.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(body))) => Ok(body),
        Ok(Ok(Err(error))) => Err(BodyError::Unreadable(error.to_string())),
        Ok(Err(_)) => Err(BodyError::TooLarge(limit)),
        Err(_) => {
            // Debug: slow clients come in floods, and the 408s show in the request metrics.
            tracing::debug!(
                timeout = ?deadline,
                "request body not in within REQUEST_BODY_TIMEOUT; answering 408"
            );
            Err(BodyError::TimedOut(deadline))
        }
    }
}
