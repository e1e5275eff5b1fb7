//! `registry-operator render`: print the zot config and the Kubernetes objects a Registry
//! manifest would produce, without a cluster; for an external Registry, judge its URL offline
//! with the operator's address policy and print what the operator would do.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};

use super::strict;
use crate::api::registry::Registry;
use crate::controller::context::{parse_cluster_domain, DEFAULT_CLUSTER_DOMAIN};
use crate::controller::registry::address::{check_external_url, Destination, UrlPolicy};
use crate::controller::registry::builders::{desired_registry, DesiredRegistry, RegistryRef};
use crate::controller::target::DEFAULT_CA_KEY;
use crate::oci::host::url_host;
use crate::oci::redact::redact_url;
use crate::oci::{parse_base_url, AddressPolicy};

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A YAML stream: the zot config first, then one document per object.
    #[default]
    Yaml,
    /// A JSON list: the zot config first, then the objects (with `--only config`: exactly
    /// the bytes of `config.json`).
    Json,
}

/// What `render` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Only zot's `config.json`.
    Config,
    /// Only the Kubernetes objects (e.g. to pipe into a schema validator).
    Objects,
}

/// Arguments of `registry-operator render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The Registry manifest (YAML or JSON); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Render for this zot release instead of `spec.version`, e.g. v2.1.20.
    #[arg(long = "zot-version", value_name = "VERSION")]
    pub zot_version: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Print only the zot config or only the Kubernetes objects.
    #[arg(long = "only", value_enum)]
    pub only: Option<Only>,
    /// The cluster's DNS domain (names zot's cluster members when replicas > 1).
    #[arg(long = "cluster-domain", value_name = "DOMAIN", default_value = DEFAULT_CLUSTER_DOMAIN, value_parser = parse_cluster_domain)]
    pub cluster_domain: String,
    /// For an external Registry: judge its URL as an operator run with this
    /// `--allow-loopback-registries` would (an operator in a cluster
    /// runs with false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_loopback_registries: bool,
    /// For an external Registry: judge its URL as an operator run with
    /// `--allow-cross-namespace-services` would.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub allow_cross_namespace_services: bool,
    /// For an external Registry: judge it as an operator run with
    /// `--allow-insecure-skip-tls-verify` would (without it, `insecureSkipTlsVerify: true` is
    /// refused).
    #[arg(long)]
    pub allow_insecure_skip_tls_verify: bool,
    /// For an external Registry: judge it as an operator run with
    /// `--allow-plain-http-credentials` would (without it, credentials over plain http to a
    /// host outside the cluster are refused).
    #[arg(long)]
    pub allow_plain_http_credentials: bool,
}

/// Why `render` failed.
enum Failure {
    /// Invalid input: one line per problem (exit 2).
    Invalid(Vec<String>),
    /// Could not read or write (exit 1).
    Io(String),
}

/// Runs `render`: exit 0 with the output, 2 with one line per problem on invalid input, 1 when
/// the file cannot be read. An external Registry has no zot config: its URL is judged offline
/// with the operator's address policy and what the operator would do is printed.
pub fn run(args: &RenderArgs) -> ExitCode {
    let output = read(args).and_then(|text| {
        let (registry, namespace, name) =
            strict::read_resource::<Registry>(&text, registry_schema())
                .map_err(Failure::Invalid)?;
        if registry.spec.external.is_some() {
            let policy = UrlPolicy {
                addresses: AddressPolicy {
                    allow_loopback: args.allow_loopback_registries,
                },
                allow_cross_namespace_services: args.allow_cross_namespace_services,
                cluster_domain: &args.cluster_domain,
            };
            let lockdown = crate::controller::lockdown::Lockdown {
                allow_insecure_skip_tls_verify: args.allow_insecure_skip_tls_verify,
                allow_plain_http_credentials: args.allow_plain_http_credentials,
                ..Default::default()
            };
            lockdown
                .check_spec(&registry.spec, "", &args.cluster_domain)
                .map_err(|refused| Failure::Invalid(vec![refused.to_string()]))?;
            let summary = external_summary(&registry, &namespace, &name, &policy)?;
            return format_value(&summary, args.output);
        }
        let desired = render_read(
            &registry,
            &namespace,
            &name,
            args.zot_version.as_deref(),
            &args.cluster_domain,
        )?;
        format_output(&desired, args.output, args.only)
    });
    match output {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: writing output: {e}");
                    ExitCode::from(super::EXIT_FAILURE)
                }
            }
        }
        Err(Failure::Invalid(lines)) => {
            for line in lines {
                eprintln!("error: {line}");
            }
            ExitCode::from(super::EXIT_INVALID)
        }
        Err(Failure::Io(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

fn read(args: &RenderArgs) -> Result<String, Failure> {
    if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Io(format!("reading standard input: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(&args.file)
        .map_err(|e| Failure::Io(format!("reading {}: {e}", args.file.display())))
}

/// Parses a Registry manifest strictly (unknown fields, wrong types, bad YAML are problems)
/// and renders it for a cluster with the default DNS domain; on invalid input every problem
/// is returned as one line.
pub fn render_manifest(
    text: &str,
    zot_version: Option<&str>,
) -> Result<DesiredRegistry, Vec<String>> {
    parse_and_render(text, zot_version, DEFAULT_CLUSTER_DOMAIN).map_err(|f| match f {
        Failure::Invalid(lines) => lines,
        Failure::Io(message) => vec![message],
    })
}

/// The Registry CRD's `openAPIV3Schema`, generated once per process.
fn registry_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(strict::crd_schema::<Registry>)
}

fn parse_and_render(
    text: &str,
    zot_version: Option<&str>,
    cluster_domain: &str,
) -> Result<DesiredRegistry, Failure> {
    let (registry, namespace, name) =
        strict::read_resource::<Registry>(text, registry_schema()).map_err(Failure::Invalid)?;
    render_read(&registry, &namespace, &name, zot_version, cluster_domain)
}

fn render_read(
    registry: &Registry,
    namespace: &str,
    name: &str,
    zot_version: Option<&str>,
    cluster_domain: &str,
) -> Result<DesiredRegistry, Failure> {
    desired_registry(
        RegistryRef {
            name,
            namespace,
            spec: &registry.spec,
            cluster_domain,
        },
        zot_version,
    )
    .map_err(|e| Failure::Invalid(e.lines()))
}

/// What the operator would do with an external Registry, judged offline: the URL and where
/// it points by the address policy, where the credentials and the CA come from. Refused: one
/// line naming the rule.
fn external_summary(
    registry: &Registry,
    namespace: &str,
    name: &str,
    policy: &UrlPolicy<'_>,
) -> Result<serde_json::Value, Failure> {
    let Some(ext) = &registry.spec.external else {
        return Err(Failure::Invalid(vec!["spec.external: not set".to_string()]));
    };
    // The API server refuses zot fields beside `external` (a CEL rule the schema check here
    // does not run): say so rather than print a plan for fields that would be ignored.
    let spec = serde_json::to_value(&registry.spec)
        .map_err(|e| Failure::Io(format!("serialising the spec: {e}")))?;
    let managed: Vec<String> = spec
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .filter(|k| *k != "external" && *k != "aliases")
        .map(|k| format!("spec.{k}"))
        .collect();
    if !managed.is_empty() {
        return Err(Failure::Invalid(vec![format!(
            "spec.external declares a registry the operator does not deploy: only external and aliases may be set with it, not {}",
            managed.join(", ")
        )]));
    }
    let destination = check_external_url(&ext.url, namespace, policy)
        .map_err(|refused| Failure::Invalid(vec![refused.to_string()]))?;
    let base = parse_base_url(&ext.url).map_err(|e| Failure::Invalid(vec![e.to_string()]))?;
    let host = url_host(&base);
    let address = match destination {
        Destination::Address(ip) => format!("IP address {ip}: allowed by the address policy"),
        Destination::Service { namespace } => format!(
            "a Service of namespace {namespace}: allowed; the addresses it resolves to are judged again at connect time"
        ),
        Destination::Name => format!(
            "host name {}: resolved only at connect time, where every address it resolves to is judged (cloud-metadata, link-local, unspecified-address and multicast addresses refused{}) and only allowed ones are connected to",
            base.host_str().unwrap_or_default(),
            if policy.addresses.allow_loopback { "" } else { ", loopback refused" },
        ),
    };
    let credentials = match &ext.credentials_secret_ref {
        Some(s) if ext.credentials_fallback_hosts.is_empty() => format!(
            "Secret {namespace}/{}: the entry for {host} of a docker config (.dockerconfigjson), else username and password; sent only in answer to a challenge",
            s.name
        ),
        Some(s) => format!(
            "Secret {namespace}/{}: the entry for {host} of a docker config (.dockerconfigjson), then those for {} in that order, else username and password; sent only in answer to a challenge",
            s.name,
            ext.credentials_fallback_hosts.join(", ")
        ),
        None if !base.username().is_empty() => {
            "the user name and password written in spec.external.url".to_string()
        }
        None => "none: anonymous".to_string(),
    };
    let redacted = redact_url(&base);
    let mut out = serde_json::json!({
        "registry": format!("{namespace}/{name}"),
        "kind": "external: nothing is deployed; the operator checks GET /v2/ and runs retention policies against it",
        "url": redacted.trim_end_matches('/'),
        "address": address,
        "credentials": credentials,
        "addressPolicy": {
            "allowLoopbackRegistries": policy.addresses.allow_loopback,
            "allowCrossNamespaceServices": policy.allow_cross_namespace_services,
            "result": "allowed",
        },
    });
    if let Some(ca) = &ext.ca_secret_ref {
        out["ca"] = serde_json::json!(format!(
            "Secret {namespace}/{} (key {})",
            ca.name,
            ca.key.as_deref().unwrap_or(DEFAULT_CA_KEY)
        ));
    }
    if ext.insecure_skip_tls_verify == Some(true) {
        out["insecureSkipTLSVerify"] = serde_json::json!(true);
    }
    if !registry.spec.aliases.is_empty() {
        out["aliases"] = serde_json::json!(registry.spec.aliases);
    }
    Ok(out)
}

fn format_value(value: &serde_json::Value, format: Format) -> Result<String, Failure> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| Failure::Io(format!("serialising JSON: {e}"))),
        Format::Yaml => serde_yaml::to_string(value)
            .map(|s| format!("# external Registry: what the operator would do\n{s}"))
            .map_err(|e| Failure::Io(format!("serialising YAML: {e}"))),
    }
}

fn format_output(
    desired: &DesiredRegistry,
    format: Format,
    only: Option<Only>,
) -> Result<String, Failure> {
    let objects = desired
        .objects
        .to_values()
        .map_err(|e| Failure::Io(format!("serialising objects: {e}")))?;
    let mut documents = Vec::new();
    if only != Some(Only::Objects) {
        documents.push(desired.config.config.clone());
    }
    if only != Some(Only::Config) {
        documents.extend(objects);
    }
    match format {
        Format::Json if only == Some(Only::Config) => Ok(desired.config.json.clone()),
        Format::Json => serde_json::to_string_pretty(&documents)
            .map(|s| s + "\n")
            .map_err(|e| Failure::Io(format!("serialising JSON: {e}"))),
        Format::Yaml => {
            let mut out = String::new();
            for (i, doc) in documents.iter().enumerate() {
                if i == 0 && only != Some(Only::Objects) {
                    out.push_str(&format!(
                        "# zot {} config.json (sha256 {})\n",
                        desired.version, desired.config.hash
                    ));
                } else {
                    out.push_str("---\n");
                }
                let yaml = serde_yaml::to_string(doc)
                    .map_err(|e| Failure::Io(format!("serialising YAML: {e}")))?;
                out.push_str(&yaml);
            }
            Ok(out)
        }
    }
}
