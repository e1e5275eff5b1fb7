//! `registry-operator registry`: talk to an OCI registry with the operator's own client —
//! `check` its health, `ls` its repositories and tags (with digests and ages).
//!
//! Credentials, first found wins: `--username` with `--password-stdin`; the environment
//! variables `REGISTRY_USERNAME` and `REGISTRY_PASSWORD`; the docker config
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) entry for the registry's host;
//! otherwise anonymous.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::oci::{ClientOptions, Credentials, DockerConfig, OciError, RegistryClient};

/// Arguments of `registry-operator registry`.
#[derive(Args, Debug)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Subcommand, Debug)]
enum RegistryCommand {
    /// Check that the registry answers `GET /v2/` (200, or 401 = up but wants credentials);
    /// with credentials, that it accepts them (exit 4 when it rejects them). Credentials go
    /// out only when the registry asks for them (a 401 challenge).
    Check {
        #[command(flatten)]
        conn: Connection,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: Output,
    },
    /// List repositories, and with --tags their tags with digest, type and age.
    Ls {
        #[command(flatten)]
        conn: Connection,
        /// Only this project: the repository PREFIX itself and every PREFIX/….
        #[arg(long)]
        prefix: Option<String>,
        /// Also list tags, with digest, media type and creation time.
        #[arg(long)]
        tags: bool,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: Output,
    },
}

#[derive(Args, Debug)]
struct Connection {
    /// Registry base URL, e.g. https://registry.example.com (http:// for plain HTTP).
    url: String,
    /// User name (also from REGISTRY_USERNAME).
    #[arg(long, env = "REGISTRY_USERNAME")]
    username: Option<String>,
    /// Read the password from the first line of standard input (else REGISTRY_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
    /// Send the credentials to a Bearer token realm on HOST (repeatable); without it only
    /// the registry's host and its registrable domain get them (exit 4 otherwise).
    #[arg(long = "trust-token-realm", value_name = "HOST")]
    trust_token_realm: Vec<String>,
    /// PEM file of CA certificates to trust beside the system roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Do not verify the registry's TLS certificate (test registries only).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

/// Runs `registry-operator registry …`.
pub fn run(args: RegistryArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let result = rt.block_on(async {
        match args.command {
            RegistryCommand::Check { conn, output } => check(&conn, output).await,
            RegistryCommand::Ls {
                conn,
                prefix,
                tags,
                output,
            } => ls(&conn, prefix.as_deref(), tags, output).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &OciError) -> u8 {
    match e {
        OciError::InvalidReference { .. }
        | OciError::InvalidConfig { .. }
        | OciError::InvalidCredentials { .. }
        | OciError::AddressNotAllowed { .. } => super::EXIT_INVALID,
        e => e
            .denial()
            .map_or(super::EXIT_FAILURE, super::denial_exit_code),
    }
}

fn credentials(conn: &Connection, host: &str) -> Result<Credentials, OciError> {
    let password = if conn.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| OciError::InvalidCredentials {
                message: format!("reading the password from stdin: {e}"),
            })?;
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        std::env::var("REGISTRY_PASSWORD").ok()
    };
    match (&conn.username, password) {
        (Some(u), Some(p)) => return Ok(Credentials::basic(u, p)),
        (Some(_), None) => {
            return Err(OciError::InvalidCredentials {
                message: "--username needs --password-stdin or REGISTRY_PASSWORD".to_string(),
            })
        }
        (None, Some(_)) if conn.password_stdin => {
            return Err(OciError::InvalidCredentials {
                message: "--password-stdin needs --username or REGISTRY_USERNAME".to_string(),
            })
        }
        _ => {}
    }
    Ok(DockerConfig::load_default()?
        .map(|c| c.credentials_for(host))
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

fn connect(conn: &Connection) -> Result<RegistryClient, OciError> {
    let ca_pem = match &conn.ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|e| OciError::InvalidConfig {
            message: format!("reading {}: {e}", p.display()),
        })?),
        None => None,
    };
    let options = ClientOptions {
        max_concurrency: conn.concurrency.max(1),
        ca_pem,
        insecure_skip_tls_verify: conn.insecure_skip_tls_verify,
        trusted_token_realms: conn.trust_token_realm.clone(),
        ..ClientOptions::default()
    };
    // build once anonymously to learn the normalised host, then with the credentials
    let probe = RegistryClient::new(&conn.url, Credentials::Anonymous, options.clone())?;
    let creds = credentials(conn, &probe.host())?;
    RegistryClient::new(&conn.url, creds, options)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckOutput<'a> {
    url: &'a str,
    healthy: bool,
    status: u16,
    latency_ms: f64,
    auth_required: bool,
    /// With credentials: `accepted`, `catalogRefused` (accepted, the catalog refused), or
    /// `notRequested` (the registry never asked for them, so none were sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials: Option<&'static str>,
}

async fn check(conn: &Connection, output: Output) -> Result<(), OciError> {
    let client = connect(conn)?;
    let h = client.check().await?;
    // `GET /v2/` answers 401 to anyone: with credentials, one request that needs them says
    // whether the registry accepts them (a 401 or another refusal is the command's error).
    let credentials = if client.has_credentials() {
        match client.probe_catalog().await {
            Ok(()) if !client.credentials_requested() => Some("notRequested"),
            Ok(()) => Some("accepted"),
            Err(e)
                if e.denial()
                    == Some(crate::oci::Denial::PermissionDenied(
                        crate::oci::Refused::Catalog,
                    )) =>
            {
                Some("catalogRefused")
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let out = CheckOutput {
        url: client.base_url(),
        healthy: true,
        status: h.status,
        latency_ms: h.latency.as_secs_f64() * 1000.0,
        auth_required: h.auth_required,
        credentials,
    };
    match output {
        Output::Json => println!("{}", to_json(&out)?),
        Output::Table => println!(
            "{} healthy (HTTP {}{}, {:.1} ms){}",
            out.url,
            out.status,
            if out.auth_required {
                ", credentials required"
            } else {
                ""
            },
            out.latency_ms,
            match out.credentials {
                Some("accepted") => "; credentials accepted",
                Some("notRequested") => "; credentials not requested by the registry (none sent)",
                Some(_) => "; credentials accepted, but the account may not list the catalog",
                None => "",
            }
        ),
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RepoOutput {
    repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<TagOutput>>,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct TagOutput {
    tag: String,
    digest: String,
    media_type: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pushed: Option<String>,
}

fn to_json<T: Serialize>(v: &T) -> Result<String, OciError> {
    serde_json::to_string_pretty(v).map_err(|e| OciError::InvalidConfig {
        message: format!("encoding JSON: {e}"),
    })
}

async fn ls(
    conn: &Connection,
    prefix: Option<&str>,
    with_tags: bool,
    output: Output,
) -> Result<(), OciError> {
    let client = connect(conn)?;
    let repos = match prefix {
        Some(p) => client.repositories_under(p).await?,
        None => client.catalog().await?,
    };
    let mut out = Vec::new();
    let search = with_tags
        && client
            .capabilities()
            .await
            .map(|c| c.search)
            .unwrap_or(false);
    for repo in repos {
        let tags = if with_tags {
            Some(list_tags(&client, &repo, search, conn.concurrency.max(1)).await?)
        } else {
            None
        };
        out.push(RepoOutput {
            repository: repo,
            tags,
        });
    }
    match output {
        Output::Json => println!("{}", to_json(&out)?),
        Output::Table => print_table(&out, with_tags),
    }
    Ok(())
}

/// Tags with digest (HEAD) and age: zot's search push time where available (no pulls
/// counted), else the image config `created` (or the index annotation), once per digest.
async fn list_tags(
    client: &RegistryClient,
    repo: &str,
    search: bool,
    concurrency: usize,
) -> Result<Vec<TagOutput>, OciError> {
    let tags = client.tags(repo).await?;
    let pushed: std::collections::BTreeMap<String, Option<jiff::Timestamp>> = if search {
        client
            .zot_tag_stats(repo)
            .await?
            .into_iter()
            .map(|s| (s.tag, s.pushed))
            .collect()
    } else {
        Default::default()
    };
    let heads: Vec<(String, crate::oci::ManifestHead)> = stream::iter(tags)
        .map(|t| async move {
            let h = client.head_manifest(repo, &t).await?;
            Ok::<_, OciError>(h.map(|h| (t, h)))
        })
        .buffered(concurrency)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;
    let mut created: std::collections::BTreeMap<String, Option<jiff::Timestamp>> =
        Default::default();
    if !search {
        let digests: std::collections::BTreeSet<String> =
            heads.iter().map(|(_, h)| h.digest.clone()).collect();
        let found: Vec<(String, Option<jiff::Timestamp>)> = stream::iter(digests)
            .map(|d| async move {
                let m = client.get_manifest(repo, &d).await?;
                let c = if let Some(cfg) = m.config_digest() {
                    client.config_created(repo, &cfg).await?
                } else {
                    m.created_annotation()
                };
                Ok::<_, OciError>((d, c))
            })
            .buffered(concurrency)
            .try_collect()
            .await?;
        created.extend(found);
    }
    Ok(heads
        .into_iter()
        .map(|(tag, h)| TagOutput {
            created: created
                .get(&h.digest)
                .copied()
                .flatten()
                .map(|t| t.to_string()),
            pushed: pushed.get(&tag).copied().flatten().map(|t| t.to_string()),
            tag,
            digest: h.digest,
            media_type: h.media_type,
            size: h.size,
        })
        .collect())
}

fn age(ts: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = ts.parse::<jiff::Timestamp>() else {
        return "-".to_string();
    };
    let secs = now.as_second() - t.as_second();
    match secs {
        s if s < 0 => "future".to_string(),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn print_table(repos: &[RepoOutput], with_tags: bool) {
    if !with_tags {
        for r in repos {
            println!("{}", r.repository);
        }
        return;
    }
    let now = jiff::Timestamp::now();
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".to_string(),
        "DIGEST".to_string(),
        "TYPE".to_string(),
        "AGE".to_string(),
    ]];
    for r in repos {
        for t in r.tags.iter().flatten() {
            let short = t
                .digest
                .split_once(':')
                .map(|(a, h)| format!("{a}:{}", &h[..h.len().min(12)]))
                .unwrap_or_else(|| t.digest.clone());
            let kind = if crate::oci::media_types::is_index(&t.media_type) {
                "index"
            } else {
                "image"
            };
            let when = t.pushed.as_deref().or(t.created.as_deref());
            rows.push([
                r.repository.clone(),
                t.tag.clone(),
                short,
                kind.to_string(),
                when.map(|w| age(w, now)).unwrap_or_else(|| "-".to_string()),
            ]);
        }
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
