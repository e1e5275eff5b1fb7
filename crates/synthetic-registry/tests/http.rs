//! The synthetic registry over HTTP, answering as distribution 2.8 and zot do (plain HTTP/1.1
//! on a std socket, so nothing of the project's client is assumed).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use synthetic_registry::{Flavor, RepoId, Server, Shape};

const ACCEPT: &str =
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request(server: &Server, method: &str, path: &str, accept: Option<&str>) -> Answer {
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn json(a: &Answer) -> serde_json::Value {
    serde_json::from_str(&a.body).expect("json body")
}

#[test]
fn the_catalog_pages_like_distribution_until_every_repository_was_listed() {
    let shape = Shape {
        repositories: 250,
        ..Shape::default()
    };
    let server = Server::start(shape.clone(), "127.0.0.1:0", 1).expect("server");
    // without n: pages of 100
    let first = request(&server, "GET", "/v2/_catalog", None);
    assert_eq!(json(&first)["repositories"].as_array().unwrap().len(), 100);
    assert_eq!(
        request(&server, "GET", "/v2/_catalog?n=1001", None).status,
        400
    );
    let mut names = Vec::new();
    let mut next = Some("/v2/_catalog?n=7".to_string());
    for _ in 0..100 {
        let Some(path) = next.take() else { break };
        let a = request(&server, "GET", &path, None);
        assert_eq!(a.status, 200);
        for r in json(&a)["repositories"].as_array().unwrap() {
            names.push(r.as_str().unwrap().to_string());
        }
        next = a.header("link").map(|l| {
            l.trim_start_matches('<')
                .split_once('>')
                .unwrap()
                .0
                .to_string()
        });
    }
    let expected: Vec<String> = (0..250)
        .map(|r| shape.repo_name(RepoId::Numbered(r)))
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn distribution_sends_every_tag_at_once_and_deletes_by_digest_only() {
    let shape = Shape {
        repositories: 1,
        tags: 30,
        images: 10,
        referrer_percent: 0,
        ..Shape::default()
    };
    let server = Server::start(shape.clone(), "127.0.0.1:0", 1).expect("server");
    let repo = shape.repo_name(RepoId::Numbered(0));
    let a = request(&server, "GET", &format!("/v2/{repo}/tags/list?n=5"), None);
    assert_eq!(json(&a)["tags"].as_array().unwrap().len(), 30);
    assert!(a.header("link").is_none());
    let tag = shape.tag_name(RepoId::Numbered(0), 3);
    let path = format!("/v2/{repo}/manifests/{tag}");
    // an OCI manifest the client does not accept is not found (2.8)
    assert_eq!(request(&server, "HEAD", &path, None).status, 404);
    let head = request(&server, "HEAD", &path, Some(ACCEPT));
    assert_eq!(head.status, 200);
    let digest = head.header("docker-content-digest").unwrap().to_string();
    assert_eq!(request(&server, "DELETE", &path, None).status, 400);
    let by_digest = format!("/v2/{repo}/manifests/{digest}");
    assert_eq!(request(&server, "DELETE", &by_digest, None).status, 202);
    assert_eq!(request(&server, "DELETE", &by_digest, None).status, 404);
    // builds 3, 13 and 23 showed that image: all three tags went with it
    let a = request(&server, "GET", &format!("/v2/{repo}/tags/list"), None);
    let listed = json(&a);
    let left: Vec<&str> = listed["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(left.len(), 27);
    for k in [3, 13, 23] {
        assert!(!left.contains(&shape.tag_name(RepoId::Numbered(0), k).as_str()));
    }
    assert_eq!(server.deletions(), (1, 0));
}

#[test]
fn zot_pages_tags_and_deletes_a_tag_alone() {
    let shape = Shape {
        repositories: 1,
        tags: 12,
        images: 4,
        flavor: Flavor::Zot,
        ..Shape::default()
    };
    let server = Server::start(shape.clone(), "127.0.0.1:0", 1).expect("server");
    let r = RepoId::Numbered(0);
    let repo = shape.repo_name(r);
    let a = request(&server, "GET", &format!("/v2/{repo}/tags/list?n=5"), None);
    assert_eq!(json(&a)["tags"].as_array().unwrap().len(), 5);
    assert!(a.header("link").unwrap().contains("n=5"));
    let missing = format!("/v2/{repo}/tags/list?n=5&last=nope");
    assert_eq!(request(&server, "GET", &missing, None).status, 404);
    let tag = shape.tag_name(r, 1);
    let path = format!("/v2/{repo}/manifests/{tag}");
    assert_eq!(request(&server, "DELETE", &path, None).status, 202);
    assert_eq!(request(&server, "HEAD", &path, Some(ACCEPT)).status, 404);
    // build 5 shares build 1's image and stays
    let other = format!("/v2/{repo}/manifests/{}", shape.tag_name(r, 5));
    assert_eq!(request(&server, "HEAD", &other, Some(ACCEPT)).status, 200);
    assert!(request(&server, "GET", "/v2/_zot/ext/mgmt", None)
        .body
        .contains("releaseTag"));
    assert_eq!(server.deletions(), (0, 1));
}
