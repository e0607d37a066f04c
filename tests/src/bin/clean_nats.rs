//! Deletes the JetStream streams test runs create (`BFT_*`), so crashed runs leave nothing behind.
//! `.ci/run` calls it before the suite; it is harmless when there is nothing to delete.

use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await?;
    let js = async_nats::jetstream::new(client);
    let mut names = js.stream_names();
    let mut doomed = Vec::new();
    while let Some(name) = names.next().await {
        let name = name?;
        if name.starts_with(tests::nats::TEST_PREFIX_UPPER) {
            doomed.push(name);
        }
    }
    for name in &doomed {
        js.delete_stream(name).await?;
    }
    println!("deleted {} leftover test streams", doomed.len());
    Ok(())
}
