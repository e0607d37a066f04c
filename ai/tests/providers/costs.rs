//! Costs: exact decimals from the model's prices (given as JSON numbers or strings) and the
//! answer's token counts, half-even to 6 places.

use ai::{ModelConfig, Provider};
use serde_json::json;

use crate::server::{FakeServer, Reply};
use crate::*;

#[tokio::test]
async fn given_prices_as_json_numbers_or_strings_when_an_answer_is_billed_then_the_cost_is_exact() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        openai_answer(r#"{"features":[]}"#, 123_457, 98_765),
    )])
    .await;
    let base = json!({
        "provider": "openai",
        "base_url": server.url(),
        "model": "m",
        "api_key_env": KEY_ENV,
        "max_output_tokens": 1000
    });
    let mut as_numbers = base.to_string();
    as_numbers.pop();
    as_numbers.push_str(r#","input_usd_per_mtok":0.15,"output_usd_per_mtok":0.600001}"#);
    let mut as_strings = base.to_string();
    as_strings.pop();
    as_strings.push_str(r#","input_usd_per_mtok":"0.15","output_usd_per_mtok":"0.600001"}"#);

    // (123457 × 0.15 + 98765 × 0.600001) / 1e6 = (18518.55 + 59259.098765) / 1e6
    //   = 0.077777648765 → 0.077778
    for text in [as_numbers, as_strings] {
        let model: ModelConfig = serde_json::from_str(&text).expect("a model");
        assert_eq!(model.provider, Provider::Openai);
        let answer = client()
            .complete(&model, &structured_request(), deadline(10))
            .await
            .expect("an answer");
        assert_eq!(answer.cost_usd.to_string(), "0.077778", "{text}");
        let recorded = serde_json::to_value(&answer).expect("serialises");
        assert_eq!(recorded["cost_usd"], "0.077778");
    }
}
