//! The bus error and its mapping onto [`liftguard_model::ErrorKind`].
//!
//! Invariant: `QueueFull` (backpressure) is always its own variant, never hidden inside a
//! `Kafka(..)`, so callers can answer `RESOURCE_EXHAUSTED` with a retry hint.

use std::time::Duration;

use liftguard_model::ErrorKind;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bounded queue / partition is full: retry later.
    #[error("bus queue is full (backpressure), retry later")]
    QueueFull,
    /// The bus was closed (shutdown).
    #[error("bus is closed")]
    Closed,
    /// The broker or the transport is unavailable.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// An operation did not finish in time.
    #[error("bus operation timed out after {0:?}")]
    Timeout(Duration),
    /// Bad input: topic name, group id, offset, payload size, configuration.
    #[error("invalid bus request: {0}")]
    InvalidArgument(String),
    /// A commit named a partition this consumer does not own (any more): it was rebalanced
    /// away; the new owner will receive the uncommitted records again.
    #[error("partition {topic}/{partition} is not assigned to this consumer")]
    NotAssigned { topic: String, partition: i32 },
    /// An error reported by librdkafka / the Kafka broker.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

impl BusError {
    /// The error vocabulary shared by all liftguard crates.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BusError::QueueFull => ErrorKind::ResourceExhausted,
            BusError::Closed | BusError::Unavailable(_) | BusError::Timeout(_) => {
                ErrorKind::Unavailable
            }
            BusError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            BusError::NotAssigned { .. } => ErrorKind::FailedPrecondition,
            BusError::Kafka(e) => kafka_kind(e),
        }
    }

    /// Maps a librdkafka error, turning a full producer queue into `QueueFull`.
    pub(crate) fn from_kafka(e: KafkaError) -> BusError {
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) {
            BusError::QueueFull
        } else {
            BusError::Kafka(e)
        }
    }
}

fn kafka_kind(e: &KafkaError) -> ErrorKind {
    use RDKafkaErrorCode as C;
    match e {
        KafkaError::ClientConfig(..) | KafkaError::Nul(_) => return ErrorKind::InvalidArgument,
        KafkaError::ClientCreation(_) => return ErrorKind::Internal,
        KafkaError::Canceled => return ErrorKind::Unavailable,
        _ => {}
    }
    let Some(code) = e.rdkafka_error_code() else {
        return ErrorKind::Internal;
    };
    match code {
        C::QueueFull | C::ThrottlingQuotaExceeded => ErrorKind::ResourceExhausted,
        C::MessageSizeTooLarge
        | C::InvalidMessageSize
        | C::MessageBatchTooLarge
        | C::InvalidTopic
        | C::UnknownTopic
        | C::UnknownPartition
        | C::UnknownTopicOrPartition
        | C::InvalidArgument
        | C::InvalidConfig
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidRequest
        | C::InvalidRecord
        | C::InvalidGroupId
        | C::InvalidCommitOffsetSize
        | C::OffsetMetadataTooLarge
        | C::InvalidTimestamp
        | C::KeySerialization
        | C::ValueSerialization => ErrorKind::InvalidArgument,
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed => ErrorKind::PermissionDenied,
        C::Authentication | C::SaslAuthenticationFailed | C::UnsupportedSASLMechanism => {
            ErrorKind::Unauthenticated
        }
        C::TopicAlreadyExists => ErrorKind::AlreadyExists,
        C::IllegalGeneration
        | C::UnknownMemberId
        | C::RebalanceInProgress
        | C::AssignmentLost
        | C::FencedInstanceId
        | C::State
        | C::Fenced
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::OutOfOrderSequenceNumber
        | C::Fatal
        | C::Inconsistent
        | C::GaplessGuarantee
        | C::BadMessage
        | C::BadCompression
        | C::Fail
        | C::NotImplemented
        | C::UnsupportedFeature
        | C::UnsupportedVersion => ErrorKind::Internal,
        // Everything else is the broker or the network not being there right now
        // (transport failures, timeouts, leader elections, not enough replicas, ...).
        _ => ErrorKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_backpressure_and_outages() {
        assert_eq!(BusError::QueueFull.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(
            BusError::from_kafka(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)).kind(),
            ErrorKind::ResourceExhausted
        );
        assert!(matches!(
            BusError::from_kafka(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)),
            BusError::QueueFull
        ));
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::RequestTimedOut,
        ] {
            assert_eq!(
                BusError::from_kafka(KafkaError::MessageProduction(code)).kind(),
                ErrorKind::Unavailable,
                "{code:?}"
            );
        }
        assert_eq!(
            BusError::from_kafka(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            ))
            .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            BusError::from_kafka(KafkaError::MessageProduction(
                RDKafkaErrorCode::TopicAuthorizationFailed
            ))
            .kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(BusError::Closed.kind(), ErrorKind::Unavailable);
        assert_eq!(
            BusError::NotAssigned {
                topic: "t".into(),
                partition: 0
            }
            .kind(),
            ErrorKind::FailedPrecondition
        );
    }
}
