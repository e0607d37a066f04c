//! The OpenAPI 3.1 description of the write routes, generated from the handlers' annotations.

use domain::limits::Limits;
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{Array, ArrayBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{auth_routes, project_routes};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Backforge API", version = "1", description = "Writes (command side) of the Backforge API"),
    paths(
        auth_routes::register,
        auth_routes::login,
        auth_routes::refresh,
        auth_routes::logout,
        auth_routes::update_profile,
        auth_routes::change_password,
        project_routes::create_project,
        project_routes::update_project,
        project_routes::archive_project,
        project_routes::put_member,
        project_routes::delete_member,
        project_routes::add_feature,
        project_routes::update_feature,
        project_routes::remove_feature,
        crate::functions::create_function,
        crate::functions::update_function,
        crate::functions::delete_function,
        crate::functions::test_function,
        crate::records::create_record,
        crate::records::update_record,
        crate::records::delete_record,
        crate::generations::request_generation,
        crate::sandbox_routes::sandbox_execute,
        crate::ai_catalog::register_model,
        crate::ai_catalog::update_model,
        crate::ai_catalog::retire_model,
        crate::ai_catalog::create_prompt,
        crate::ai_catalog::revise_prompt,
        crate::ai_requests::generate_config,
        crate::ai_requests::enhance_config,
        crate::ai_requests::generate_code,
        crate::ai_requests::apply_proposal,
        crate::admin_users::update_user,
    ),
    components(schemas(
        auth_routes::RegisterRequest,
        auth_routes::LoginRequest,
        auth_routes::RefreshRequest,
        auth_routes::ProfileUpdate,
        auth_routes::ChangePasswordRequest,
        crate::admin_users::AdminUserUpdate,
        crate::admin_users::AdminUserView,
        project_routes::FeatureInput,
        project_routes::CreateProjectRequest,
        project_routes::UpdateProjectRequest,
        project_routes::UpdateFeatureRequest,
        project_routes::MemberRequest,
        crate::functions::ExampleInput,
        crate::functions::FunctionInput,
        crate::functions::UpdateFunctionRequest,
        crate::functions::TestFunctionRequest,
        crate::generations::GenerationRequest,
        crate::sandbox_routes::SandboxExecuteRequest,
        crate::ai_catalog::CreateModelRequest,
        crate::ai_catalog::UpdateModelRequest,
        crate::ai_catalog::CreatePromptRequest,
        crate::ai_catalog::RevisePromptRequest,
        crate::ai_requests::GenerateConfigRequest,
        crate::ai_requests::EnhanceConfigRequest,
        crate::ai_requests::GenerateCodeRequest,
        crate::ai_requests::ApplyAnswer,
    )),
    modifiers(&BearerAuth)
)]
pub struct CommandApiDoc;

/// The write routes' document, with the error answers and shared schemas of every operation.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = CommandApiDoc::openapi();
    runtime::openapi::complete(&mut doc);
    doc
}

/// `features` of a project created with its features: at most the project's feature limit.
pub fn feature_inputs() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("FeatureInput"))
        .max_items(Some(Limits::default().features_per_project))
        .build()
}
