//! A resolver for the client's address-policy seam (`ClientOptions::resolver`): it maps test
//! names to addresses and records every address the client hands to the connector — and
//! refuses any that would leave this host, so even a broken policy sends no packet out.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use registry_operator::oci::address::Resolving;
use registry_operator::oci::Resolver;

/// Maps names to addresses; records what was resolved and what the connector was handed.
#[derive(Default)]
pub struct TestResolver {
    names: Vec<(&'static str, IpAddr)>,
    resolved: Mutex<Vec<String>>,
    connecting: Mutex<Vec<(String, IpAddr)>>,
}

impl TestResolver {
    /// Maps each `(name, address)`; a name may be listed more than once.
    pub fn new(names: &[(&'static str, &str)]) -> Arc<Self> {
        Arc::new(TestResolver {
            names: names
                .iter()
                .map(|(n, a)| (*n, a.parse().expect("address")))
                .collect(),
            ..Default::default()
        })
    }
    /// Every name asked for, in order.
    pub fn resolved(&self) -> Vec<String> {
        self.resolved.lock().unwrap().clone()
    }
    /// Every (name, address) handed to the connector.
    pub fn connecting(&self) -> Vec<(String, IpAddr)> {
        self.connecting.lock().unwrap().clone()
    }
}

impl Resolver for TestResolver {
    fn resolve(&self, name: &str) -> Resolving {
        self.resolved.lock().unwrap().push(name.to_string());
        let found: Vec<IpAddr> = self
            .names
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .collect();
        Box::pin(async move {
            if found.is_empty() {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "unknown test name",
                ))
            } else {
                Ok(found)
            }
        })
    }

    fn connecting(&self, name: &str, addresses: &[IpAddr]) -> std::io::Result<()> {
        let mut record = self.connecting.lock().unwrap();
        record.extend(addresses.iter().map(|a| (name.to_string(), *a)));
        // The test's last guard: nothing but loopback is ever connected to from a test.
        if addresses.iter().any(|a| !a.is_loopback()) {
            return Err(std::io::Error::other(
                "test guard: a non-loopback address reached the connector",
            ));
        }
        Ok(())
    }
}
