//! The chunked blob push holds a chunk, not the blob: measured on this test process's peak
//! RSS (its own binary, so no other test shares the process).

mod support;

use std::io::Write;

use registry_operator::oci::{
    BlobOutcome, ClientOptions, Credentials, RegistryClient, DEFAULT_CHUNK_BYTES,
};
use support::registry::TestRegistry;

/// The process's peak resident set (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn pushing_a_20_mib_file_raises_the_peak_memory_by_far_less_than_the_file() {
    let reg = TestRegistry::start();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let mib: Vec<u8> = (0..1024 * 1024u32).map(|j| (j % 251) as u8).collect();
    for i in 0..20u8 {
        let mut m = mib.clone();
        m[0] = i;
        file.write_all(&m).unwrap();
    }
    file.flush().unwrap();
    drop(mib);
    let c =
        RegistryClient::new(&reg.url, Credentials::Anonymous, ClientOptions::default()).unwrap();
    // warm the client (connection, TLS-less pool, runtime) on a small blob first
    c.push_blob("warm", bytes::Bytes::from_static(b"warm"))
        .await
        .unwrap();
    let before = peak_rss();
    let pushed = c.push_blob_file("big", file.path()).await.unwrap();
    let grown = peak_rss().saturating_sub(before);
    assert!(matches!(pushed.outcome, BlobOutcome::UploadedChunked(5)));
    assert!(
        grown < 3 * DEFAULT_CHUNK_BYTES as u64,
        "peak RSS grew by {grown} bytes pushing a 20 MiB file"
    );
    eprintln!("peak RSS growth pushing 20 MiB in 4 MiB chunks: {grown} bytes");
}
