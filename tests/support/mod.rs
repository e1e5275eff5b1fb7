//! Test support shared by the integration tests (and the client benchmark):
//!
//! - [`registry`]: a real CNCF distribution registry (`docker-registry`) on a free loopback
//!   port, stopped on drop;
//! - [`seed`]: pushes small OCI images, indexes, aliased tags and referrers through the API;
//! - [`http`]: a tiny loopback HTTP/1.1 server for test doubles of what distribution cannot
//!   show (bearer tokens, zot's tag deletion and search API);
//! - [`hostile`]: a registry that records every request's headers and asks for credentials
//!   as told (never, Basic, Bearer with a realm anywhere), and a recording token realm;
//! - [`proxy`]: a fault-injecting loopback proxy (5xx, 429 + Retry-After, resets, latency)
//!   that counts requests by method;
//! - [`planner`]: a small language for synthetic inventories and policies (planner tests);
//! - [`schema`]: offline CRD schema checks, as the API server does them;
//! - [`cluster`]: the real control plane of the test run (`scripts/cluster.sh`): admin client,
//!   CRDs, a namespace per test, the chart's ServiceAccount and RBAC with a token, the audit log;
//! - [`control_plane`]: a control plane of one test's own (for the fault tests: pause, restart)
//!   and the operator as a process (`registry-operator run`) as the chart's ServiceAccount;
//! - [`resolver`]: a resolver for the client's address-policy seam that maps test names to
//!   addresses and records (and keeps on loopback) every connection attempt;
//! - [`crd_cases`]: objects the CRDs' schema and CEL rules accept or reject, judged offline
//!   (`tests/crds.rs`) and by the API server (`tests/operator_apiserver.rs`).
//!
//! Include it with `mod support;` from a test file (or `#[path = "../tests/support/mod.rs"]`
//! from an example). Not every test file uses every item. Typical use:
//!
//! ```ignore
//! let reg = support::registry::TestRegistry::start();          // killed on drop
//! let seeder = support::seed::Seeder::new(&reg.url, None);
//! let img = seeder.push_image("team/app", Some("v1"), "id", "2026-01-01T00:00:00Z").await;
//! seeder.tag("team/app", "latest", &img).await;                // alias: same digest
//! let fleet = seeder.seed_fleet(20, 10, 4).await;              // repo -> tag -> digest
//! let proxy = support::proxy::FaultProxy::start(&reg.url).await;
//! proxy.inject(FaultRule::new(Fault::Status(503)).method("DELETE").times(1));
//! // point the code under test at proxy.url(); assert on proxy.count("DELETE")
//! ```
//!
//! Needs the Debian packages `docker-registry` and `apache2-utils` (htpasswd) and the
//! `openssl` CLI (TLS registries only).
#![allow(dead_code)]

pub mod cluster;
pub mod control_plane;
pub mod crd_cases;
pub mod hostile;
pub mod http;
pub mod planner;
pub mod proxy;
pub mod registry;
pub mod resolver;
pub mod schema;
pub mod seed;
