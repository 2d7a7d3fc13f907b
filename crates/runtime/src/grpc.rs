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

/// The services a server advertises through reflection, sorted: what `grpcurl list`
/// shows. For checks and tests of what a role serves.
pub async fn reflected_services(
    channel: tonic::transport::Channel,
) -> Result<Vec<String>, tonic::Status> {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(channel);
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]))
        .await?
        .into_inner();
    let answer = answers.next().await.ok_or_else(|| {
        tonic::Status::unknown("reflection closed the stream without answering")
    })??;
    match answer.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            Ok(names)
        }
        other => Err(tonic::Status::unknown(format!(
            "unexpected reflection answer {other:?}"
        ))),
    }
}
