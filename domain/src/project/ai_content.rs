//! Content from an applied AI proposal: the owner's own commands, decided by the same rules, whose events record the AI request that set the content.
//!
//! Only an AI request's apply builds an [`ApplyAiContent`]; no HTTP body can carry an
//! `ai_request_id`. The project keeps the last one applied per feature and function, and an owner's
//! later edit keeps it (`generation_problems` reads it: an `ai_assisted` feature or function
//! generates once AI content was applied to it).

use time::OffsetDateTime;

use super::{
    AddFeature, Project, ProjectCommand, ProjectError, ProjectEvent, UpdateFeature, UpdateFunction,
};
use crate::ids::AiRequestId;
use crate::limits::Limits;

/// One change an AI proposal makes, recorded with the AI request it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyAiContent {
    pub ai_request_id: AiRequestId,
    pub content: AiContent,
}

/// The changes a proposal can make: `generate_config` adds features, `enhance_config` updates one,
/// `generate_code` replaces a function's code.
#[derive(Debug, Clone, PartialEq)]
pub enum AiContent {
    AddFeature(AddFeature),
    UpdateFeature(UpdateFeature),
    UpdateFunction(UpdateFunction),
}

impl AiContent {
    /// The owner's command that makes the same change.
    pub fn command(&self) -> ProjectCommand {
        match self {
            AiContent::AddFeature(c) => ProjectCommand::AddFeature(c.clone()),
            AiContent::UpdateFeature(c) => ProjectCommand::UpdateFeature(c.clone()),
            AiContent::UpdateFunction(c) => ProjectCommand::UpdateFunction(c.clone()),
        }
    }

    fn at(&self) -> OffsetDateTime {
        match self {
            AiContent::AddFeature(c) => c.at,
            AiContent::UpdateFeature(c) => c.at,
            AiContent::UpdateFunction(c) => c.at,
        }
    }
}

impl Project {
    /// The events of the content's own command, each carrying the AI request. Content equal to
    /// what is stored still records the request (an update of nothing but `ai_request_id`), unless
    /// that request is recorded already: the proposal was applied, and its content is the AI's.
    pub(super) fn apply_ai_content(
        &self,
        ApplyAiContent {
            ai_request_id,
            content,
        }: &ApplyAiContent,
        limits: &Limits,
    ) -> Result<Vec<ProjectEvent>, ProjectError> {
        let mut events = self.decide(&content.command(), limits)?;
        let request = Some(*ai_request_id);
        if events.is_empty() {
            let at = content.at();
            match content {
                AiContent::AddFeature(_) => {}
                AiContent::UpdateFeature(c) => {
                    if self.feature(c.feature_id).map(|f| f.ai_request_id) != Some(request) {
                        events.push(ProjectEvent::FeatureUpdated {
                            project_id: self.id,
                            feature_id: c.feature_id,
                            name: None,
                            generation_mode: None,
                            configuration: None,
                            schema_definition: None,
                            is_enabled: None,
                            updated_at: at,
                            ai_request_id: None,
                        });
                    }
                }
                AiContent::UpdateFunction(c) => {
                    if self.function(c.function_id).map(|f| f.ai_request_id) != Some(request) {
                        events.push(ProjectEvent::FunctionUpdated {
                            project_id: self.id,
                            function_id: c.function_id,
                            name: None,
                            description: None,
                            language: None,
                            function_code: None,
                            input_schema: None,
                            output_schema: None,
                            examples: None,
                            generation_mode: None,
                            endpoint_path: None,
                            http_method: None,
                            is_active: None,
                            updated_at: at,
                            ai_request_id: None,
                        });
                    }
                }
            }
        }
        for event in &mut events {
            match event {
                ProjectEvent::FeatureAdded { ai_request_id, .. }
                | ProjectEvent::FeatureUpdated { ai_request_id, .. }
                | ProjectEvent::FunctionUpdated { ai_request_id, .. } => *ai_request_id = request,
                _ => {}
            }
        }
        Ok(events)
    }
}
