//! Test support shared by the integration tests (and the client benchmark):
//!
//! - [`registry`]: a real CNCF distribution registry (`docker-registry`) on a free loopback
//!   port, stopped on drop;
//! - [`seed`]: pushes small OCI images, indexes, aliased tags and referrers through the API;
//! - [`http`]: a tiny loopback HTTP/1.1 server for test doubles of what distribution cannot
//!   show (bearer tokens, zot's tag deletion and search API);
//! - [`proxy`]: a fault-injecting loopback proxy (5xx, 429 + Retry-After, resets, latency)
//!   that counts requests by method.
//!
//! Include it with `mod support;` from a test file. Not every test file uses every item.
#![allow(dead_code)]

pub mod http;
pub mod proxy;
pub mod registry;
pub mod seed;
