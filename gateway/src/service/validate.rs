//! The checks of client input that every transport and the HTTP API share:
//! names, ids, limits.

use livegate_core::topic::{validate_event, validate_msg_id, validate_topic};

use crate::error::{ErrorKind, ServiceError};

/// Longest history page.
pub const MAX_HISTORY_LIMIT: u64 = 1000;
/// History page when no `limit` is given.
pub const DEFAULT_HISTORY_LIMIT: u64 = 100;

/// `bad_topic` unless `topic` follows the naming rules.
pub fn topic(topic: &str) -> Result<(), ServiceError> {
    validate_topic(topic).map_err(|e| ServiceError::new(ErrorKind::BadTopic, e.to_string()))
}

/// `bad_event` unless `event` (when given) follows the naming rules.
pub fn event(event: Option<&str>) -> Result<(), ServiceError> {
    match event.map(validate_event) {
        Some(Err(e)) => Err(ServiceError::new(ErrorKind::BadEvent, e.to_string())),
        _ => Ok(()),
    }
}

/// `bad_frame` / 400 `bad_request` unless `msg_id` (when given) is 1 to 64
/// bytes without control characters.
pub fn msg_id(msg_id: Option<&str>) -> Result<(), ServiceError> {
    match msg_id.map(validate_msg_id) {
        Some(Err(e)) => Err(ServiceError::bad_request(e.to_string())),
        _ => Ok(()),
    }
}

/// The history page size: `limit`, or the default; `bad_limit` outside
/// 1..=[`MAX_HISTORY_LIMIT`].
pub fn history_limit(limit: Option<u64>) -> Result<usize, ServiceError> {
    let limit = limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if (1..=MAX_HISTORY_LIMIT).contains(&limit) {
        Ok(limit as usize)
    } else {
        Err(ServiceError::new(
            ErrorKind::BadLimit,
            format!("limit must be between 1 and {MAX_HISTORY_LIMIT}"),
        ))
    }
}

/// `too_many_subscriptions` when a request names more than `max` topics.
pub fn topic_count(requested: usize, max: usize) -> Result<(), ServiceError> {
    if requested > max {
        return Err(ServiceError::new(
            ErrorKind::TooManySubscriptions,
            format!("{requested} topics requested, the limit is {max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_names() {
        assert_eq!(history_limit(None), Ok(100));
        assert_eq!(history_limit(Some(1000)), Ok(1000));
        for bad in [0, 1001] {
            assert_eq!(
                history_limit(Some(bad)).unwrap_err().kind,
                ErrorKind::BadLimit
            );
        }
        assert_eq!(topic("a b").unwrap_err().kind, ErrorKind::BadTopic);
        assert_eq!(event(Some("")).unwrap_err().kind, ErrorKind::BadEvent);
        assert!(event(None).is_ok());
        let long = "x".repeat(65);
        assert_eq!(msg_id(Some(&long)).unwrap_err().kind, ErrorKind::BadRequest);
        assert!(topic_count(3, 3).is_ok());
        assert_eq!(
            topic_count(4, 3).unwrap_err().kind,
            ErrorKind::TooManySubscriptions
        );
    }
}
