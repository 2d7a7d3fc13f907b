//! gRPC plumbing every serving role shares: standard health (`grpc.health.v1`) and
//! server reflection v1, so `grpcurl` and standard clients work against any role.

use tonic::service::{Routes, RoutesBuilder};
use tonic_health::{ServingStatus, server::HealthReporter};

/// Errors building the gRPC routes.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A role's gRPC routes plus the health reporter (set a service NOT_SERVING on drain).
pub struct GrpcRoutes {
    pub routes: Routes,
    pub health: HealthReporter,
}

/// Adds gRPC health (every name in `serving` and the overall server `""` set SERVING)
/// and server reflection v1 (the liftguard protos and grpc.health.v1, advertising
/// exactly `serving`) to `builder`. Call once per server.
pub async fn add_health_and_reflection(
    builder: &mut RoutesBuilder,
    serving: &[&str],
) -> Result<HealthReporter, RoutesError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in serving.iter().copied().chain([""]) {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(liftguard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection");
    for name in serving {
        reflection = reflection.with_service_name(*name);
    }
    builder
        .add_service(health_service)
        .add_service(reflection.build_v1()?);
    Ok(health)
}
