//! Settling an AI request's budget reservation in the transaction of its terminal event: the worst case reserved at admission is replaced by what the attempts cost (`runtime::ai_budget::Settlement`).

use std::sync::Mutex;

use domain::ai::request::{AiRequest, AiRequestCommand};
use event_store::application::SideWrites;
use runtime::ai_budget::Settlement;
use rust_decimal::Decimal;
use uuid::Uuid;

/// The settlement of one command, if it can end the request (`Succeed` or `Fail`). The cost is
/// the request's as the attempt that appends decided on it — the sum of its recorded attempts,
/// which is what the terminal event carries.
pub struct Settle {
    request_id: Uuid,
    terminal: bool,
    cost_usd: Mutex<Option<Decimal>>,
}

impl Settle {
    pub fn new(request_id: Uuid, command: &AiRequestCommand) -> Self {
        Self {
            request_id,
            terminal: matches!(
                command,
                AiRequestCommand::Succeed(_) | AiRequestCommand::Fail(_)
            ),
            cost_usd: Mutex::new(None),
        }
    }

    /// Notes the cost of the state this attempt decides on.
    pub fn observe(&self, request: &AiRequest) {
        if self.terminal
            && let Ok(mut cost) = self.cost_usd.lock()
        {
            *cost = Some(request.cost_usd());
        }
    }

    /// The side write of the attempt being committed: none unless the command ends the request.
    pub fn side_writes(&self) -> Option<Box<dyn SideWrites>> {
        let cost_usd = (*self.cost_usd.lock().ok()?)?;
        Some(Box::new(Settlement {
            request_id: self.request_id,
            cost_usd,
        }))
    }
}
