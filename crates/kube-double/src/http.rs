//! HTTP routing: discovery documents, resource verbs and watch streams.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Store, WriteCtx};
use crate::{RequestRecord, Shared};

/// The response body type: whole JSON documents, or a stream of watch events.
pub type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value, warnings: &[String]) -> Response<Body> {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private");
    for w in warnings {
        builder = builder.header("warning", format!("299 - \"{}\"", w.replace('"', "\\\"")));
    }
    builder
        .body(full(v.to_string()))
        .unwrap_or_else(|_| Response::new(full("{}")))
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status(), &[])
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1" | ""))
}

/// A resource request after routing.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: String,
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in store.types().iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, vs)) => {
                if !vs.contains(&t.version) {
                    vs.push(t.version.clone());
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups.iter().map(|(g, vs)| group_doc(g, vs)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_doc(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(json!({})),
    })
}

fn resource_list(store: &Store, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = store
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let resources: Vec<Value> = types.iter().flat_map(|t| t.discovery_entries()).collect();
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The OpenAPI v3 discovery root: one entry per served group-version.
fn openapi_root(store: &Store) -> Value {
    let mut paths = serde_json::Map::new();
    for t in store.types() {
        let key = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        let url = format!("/openapi/v3/{key}?hash={}", store.rv);
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// A minimal OpenAPI v3 document for one group-version: a PATCH operation per kind that
/// declares the `fieldValidation` parameter, which is what kubectl looks for to leave field
/// validation to the server (instead of validating itself against `/openapi/v2`, which is not
/// served). No schemas are served, so `kubectl explain` does not work.
fn openapi_gv(store: &Store, group: &str, version: &str) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for t in store
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", t.kind),
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": t.kind},
        });
        paths.insert(path, json!({"patch": op}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(
        json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": paths, "components": {"schemas": {}}}),
    )
}

fn route(store: &Store, segs: &[&str]) -> Result<Target, ApiError> {
    let path = format!("/{}", segs.join("/"));
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::no_route(&path)),
    };
    let namespaced_here = |plural: &str| {
        store
            .find_type(group, version, plural)
            .is_some_and(|t| t.namespaced)
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced_here(plural) => (
            Some(ns.to_string()),
            *plural,
            tail.first().copied(),
            tail.get(1).copied(),
        ),
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(ApiError::no_route(&path)),
    };
    let rt = store
        .find_type(group, version, plural)
        .cloned()
        .ok_or_else(|| ApiError::no_route(&path))?;
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route(&path));
    }
    let subresource = sub.unwrap_or_default().to_string();
    if !(subresource.is_empty() || subresource == "status" && rt.has_status) {
        return Err(ApiError::no_route(&path));
    }
    Ok(Target {
        rt,
        namespace,
        name: name.map(str::to_string),
        subresource,
    })
}

fn list_doc(rt: &ResourceType, items: Vec<Value>, rv: u64) -> Value {
    json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn selectors(q: &HashMap<String, String>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(
        q.get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn decode_body(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .or_else(|_| serde_yaml::from_slice::<Value>(bytes))
        .map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })
}

/// Drop strategic-merge-patch directives (`$patch`, `$retainKeys`, `$setElementOrder/...`,
/// `$deleteFromPrimitiveList/...`): the double applies the rest as a JSON merge patch.
fn strip_directives(v: &mut Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, _| !k.starts_with('$'));
        for child in m.values_mut() {
            strip_directives(child);
        }
    } else if let Some(a) = v.as_array_mut() {
        for child in a {
            strip_directives(child);
        }
    }
}

/// Serve one request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = SystemTime::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let headers = req.headers().clone();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let user_agent = header("user-agent");
    let wants_table = header("accept").contains("as=Table");
    let wants_meta = header("accept").contains("as=PartialObjectMetadata");
    let content_type = header("content-type");
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error_response(&ApiError::bad_request(format!(
                "reading the body failed: {e}"
            ))))
        }
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();

    // Discovery and health.
    let discovery = {
        let store = shared.lock();
        match segs.as_slice() {
            ["version"] => Some(json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-kube-double",
                "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc",
                "platform": "linux/amd64"
            })),
            ["api"] => Some(json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]
            })),
            ["apis"] => Some(group_list(&store)),
            ["api", v] => resource_list(&store, "", v),
            ["apis", g] => {
                let versions: Vec<String> = store
                    .types()
                    .iter()
                    .filter(|t| t.group == *g)
                    .map(|t| t.version.clone())
                    .fold(Vec::new(), |mut acc, v| {
                        if !acc.contains(&v) {
                            acc.push(v);
                        }
                        acc
                    });
                (!versions.is_empty()).then(|| group_doc(g, &versions))
            }
            ["apis", g, v] => resource_list(&store, g, v),
            ["openapi", "v3"] => Some(openapi_root(&store)),
            ["openapi", "v3", "api", v] => openapi_gv(&store, "", v),
            ["openapi", "v3", "apis", g, v] => openapi_gv(&store, g, v),
            _ => None,
        }
    };
    if method == Method::GET {
        if let Some(doc) = discovery {
            return Ok(json_response(200, &doc, &[]));
        }
        if matches!(segs.as_slice(), ["healthz"] | ["readyz"] | ["livez"]) {
            return Ok(Response::new(full("ok")));
        }
    }

    let target = {
        let store = shared.lock();
        route(&store, &segs)
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return Ok(error_response(&e)),
    };
    let manager = query
        .get("fieldManager")
        .cloned()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()
        });
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if truthy(&query, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    };
    let writes = matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    );
    let record = RequestRecord {
        time: started,
        verb: verb.to_string(),
        group: target.rt.group.clone(),
        version: target.rt.version.clone(),
        resource: target.rt.plural.clone(),
        subresource: target.subresource.clone(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
        field_manager: writes.then(|| manager.clone()),
        patch_type: (verb == "patch").then(|| {
            content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        }),
        user_agent: user_agent.clone(),
        user: header("authorization")
            .strip_prefix("Bearer ")
            .map(str::to_string)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "system:anonymous".to_string()),
        code: 0,
    };

    if verb == "watch" {
        let mut record = record;
        record.code = 200;
        shared.log(record);
        let shape = if wants_table {
            Shape::Table
        } else if wants_meta {
            Shape::Metadata
        } else {
            Shape::Object
        };
        return Ok(watch(shared, target, query, shape));
    }
    let mut result = serve_verb(
        &shared,
        verb,
        &target,
        &query,
        &content_type,
        &body,
        manager,
    );
    if wants_table && matches!(verb, "get" | "list") {
        if let Ok((_, v, _)) = &mut result {
            let items = if verb == "get" {
                vec![v.clone()]
            } else {
                v["items"].as_array().cloned().unwrap_or_default()
            };
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            let include = query
                .get("includeObject")
                .map(String::as_str)
                .unwrap_or("Metadata");
            *v = crate::table::table(&target.rt, &items, rv, include, jiff::Timestamp::now());
        }
    }
    if wants_meta && matches!(verb, "get" | "list") {
        if let Ok((_, v, _)) = &mut result {
            *v = if verb == "get" {
                partial_metadata(v)
            } else {
                let items: Vec<Value> = v["items"]
                    .as_array()
                    .map(|a| a.iter().map(partial_metadata).collect())
                    .unwrap_or_default();
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": v["metadata"], "items": items})
            };
        }
    }
    let mut record = record;
    let response = match result {
        Ok((code, v, warnings)) => {
            record.code = code;
            json_response(code, &v, &warnings)
        }
        Err(e) => {
            record.code = e.code;
            error_response(&e)
        }
    };
    shared.log(record);
    Ok(response)
}

type Served = Result<(u16, Value, Vec<String>), ApiError>;

fn serve_verb(
    shared: &Shared,
    verb: &str,
    t: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    manager: String,
) -> Served {
    let ns = t.namespace.clone().unwrap_or_default();
    let rt = &t.rt;
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let strict = q.get("fieldValidation").is_some_and(|v| v == "Strict");
    let ctx = WriteCtx {
        manager,
        subresource: t.subresource.clone(),
        dry_run,
    };
    let name = t.name.clone().unwrap_or_default();
    let finish = |code: u16, (v, pruned): (Value, Vec<String>)| -> Served {
        if strict && !pruned.is_empty() {
            let list: Vec<String> = pruned
                .iter()
                .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
                .collect();
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
        let warnings = pruned
            .iter()
            .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
            .collect();
        Ok((code, Store::present(rt, &v), warnings))
    };
    // Under `fieldValidation=Strict` every write below first runs as a dry run, so that unknown
    // fields reject it before anything is stored.
    let mut store = shared.lock();
    match verb {
        "get" => Ok((200, store.get(rt, &ns, &name)?, Vec::new())),
        "list" => {
            let (labels, fields) = selectors(q)?;
            // Pages: `continue` carries the offset (pages read the current state, not the
            // snapshot of the first page as upstream does).
            let offset = match q.get("continue").filter(|c| !c.is_empty()) {
                Some(token) => token
                    .split_once('/')
                    .and_then(|(_, o)| o.parse::<usize>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("continue key is not valid: {token}"))
                    })?,
                None => 0,
            };
            let limit = q
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0);
            let (page, total) = store.list_page(
                rt,
                t.namespace.as_deref(),
                |o| labels.matches(o) && fields.matches(o),
                offset,
                limit,
            );
            let end = limit.map_or(total, |l| (offset + l).min(total));
            let mut doc = list_doc(rt, page, store.rv);
            if end < total {
                doc["metadata"]["continue"] = json!(format!("{}/{end}", store.rv));
                doc["metadata"]["remainingItemCount"] = json!(total - end);
            }
            Ok((200, doc, Vec::new()))
        }
        "create" => {
            if t.name.is_some() {
                return Err(ApiError::method_not_allowed(
                    "POST names a collection, not an object",
                ));
            }
            let obj = decode_body(body)?;
            if let Some(body_ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
            }
            if strict {
                let trial = WriteCtx {
                    dry_run: true,
                    ..ctx.clone()
                };
                finish(201, store.create(rt, &ns, obj.clone(), &trial)?)?;
            }
            finish(201, store.create(rt, &ns, obj, &ctx)?)
        }
        "update" => {
            let obj = decode_body(body)?;
            if strict {
                let trial = WriteCtx {
                    dry_run: true,
                    ..ctx.clone()
                };
                finish(200, store.update(rt, &ns, &name, obj.clone(), &trial)?)?;
            }
            finish(200, store.update(rt, &ns, &name, obj, &ctx)?)
        }
        "patch" => {
            let kind = content_type.split(';').next().unwrap_or_default().trim();
            if kind == "application/apply-patch+yaml" {
                if !q.contains_key("fieldManager") {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "PatchOptions",
                        "",
                        &[crate::status::FieldError {
                            field: "fieldManager".into(),
                            reason: "FieldValueRequired",
                            detail: "Required value: is required for apply patch".into(),
                        }],
                    ));
                }
                let config = decode_body(body)?;
                let force = truthy(q, "force");
                let existed = store.get(rt, &ns, &name).is_ok();
                if strict {
                    let trial = WriteCtx {
                        dry_run: true,
                        ..ctx.clone()
                    };
                    finish(
                        200,
                        store.apply(rt, &ns, &name, config.clone(), force, &trial)?,
                    )?;
                }
                let code = if existed { 200 } else { 201 };
                return finish(code, store.apply(rt, &ns, &name, config, force, &ctx)?);
            }
            let mut current = store.get(rt, &ns, &name)?;
            let patch = decode_body(body)?;
            match kind {
                "application/merge-patch+json" => json_patch::merge(&mut current, &patch),
                "application/strategic-merge-patch+json" => {
                    if rt.crd.is_some() {
                        return Err(ApiError::unsupported_media_type(kind));
                    }
                    let mut patch = patch;
                    strip_directives(&mut patch);
                    json_patch::merge(&mut current, &patch);
                }
                "application/json-patch+json" => {
                    let ops: json_patch::Patch = serde_json::from_value(patch)
                        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                    json_patch::patch(&mut current, &ops).map_err(|e| ApiError {
                        code: 422,
                        reason: "Invalid",
                        message: format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                        details: None,
                    })?;
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            }
            if strict {
                let trial = WriteCtx {
                    dry_run: true,
                    ..ctx.clone()
                };
                finish(200, store.update(rt, &ns, &name, current.clone(), &trial)?)?;
            }
            finish(200, store.update(rt, &ns, &name, current, &ctx)?)
        }
        "delete" => {
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                decode_body(body)?
            };
            let propagation = q
                .get("propagationPolicy")
                .map(String::as_str)
                .or_else(|| opts["propagationPolicy"].as_str())
                .or_else(|| (opts["orphanDependents"].as_bool() == Some(true)).then_some("Orphan"))
                .unwrap_or("Background")
                .to_string();
            let precondition = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let dry = dry_run
                || opts["dryRun"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|d| d == "All"));
            let obj = store.delete(rt, &ns, &name, &propagation, precondition, dry)?;
            Ok((200, obj, Vec::new()))
        }
        "deletecollection" => {
            let (labels, fields) = selectors(q)?;
            let victims: Vec<Value> = store
                .list(rt, t.namespace.as_deref())
                .into_iter()
                .filter(|o| labels.matches(o) && fields.matches(o))
                .collect();
            let mut deleted = Vec::new();
            for v in victims {
                let vns = v
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let vname = v
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Ok(o) = store.delete(rt, &vns, &vname, "Background", None, dry_run) {
                    deleted.push(o);
                }
            }
            Ok((200, list_doc(rt, deleted, store.rv), Vec::new()))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({verb})"
        ))),
    }
}

/// The `meta.k8s.io/v1` PartialObjectMetadata form of an object (metadata-only clients).
fn partial_metadata(o: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o.get("metadata").cloned().unwrap_or(json!({}))})
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Decide how a change appears to a watch with selectors: ADDED/MODIFIED/DELETED, or nothing.
fn visible(kind: &'static str, new_match: bool, old_match: bool) -> Option<&'static str> {
    match kind {
        "MODIFIED" => match (old_match, new_match) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
        other => new_match.then_some(other),
    }
}

/// How watch events carry their objects, per the request's Accept header.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Object,
    Metadata,
    /// A one-row Table per event (`kubectl get -w`); column definitions only in the first.
    Table,
}

fn watch(
    shared: Arc<Shared>,
    t: Target,
    q: HashMap<String, String>,
    shape_kind: Shape,
) -> Response<Body> {
    let table_rt = t.rt.clone();
    let include = q
        .get("includeObject")
        .cloned()
        .unwrap_or_else(|| "Metadata".to_string());
    let first_table = std::sync::atomic::AtomicBool::new(true);
    let shape = move |o: &Value| match shape_kind {
        Shape::Object => o.clone(),
        Shape::Metadata => partial_metadata(o),
        Shape::Table => {
            let rv = o
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .unwrap_or_default();
            let mut t = crate::table::table(
                &table_rt,
                std::slice::from_ref(o),
                rv,
                &include,
                jiff::Timestamp::now(),
            );
            if !first_table.swap(false, std::sync::atomic::Ordering::Relaxed) {
                if let Some(m) = t.as_object_mut() {
                    m.insert("columnDefinitions".into(), json!([]));
                }
            }
            t
        }
    };
    let (labels, fields) = match selectors(&q) {
        Ok(s) => s,
        Err(e) => return error_response(&e),
    };
    let bookmarks = truthy(&q, "allowWatchBookmarks");
    let initial_events = truthy(&q, "sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let requested: Option<u64> = q
        .get("resourceVersion")
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let rt = t.rt.clone();
    let ns = t.namespace.clone();
    let name = t
        .name
        .clone()
        .or_else(|| fields.pinned_name().map(str::to_string));
    let bookmark_every = shared.bookmark_interval;
    let storage = Store::storage(&t.rt);
    tokio::spawn(async move {
        let matches = |o: &Value| -> bool {
            let ons = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let oname = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            ns.as_deref().is_none_or(|n| n == ons)
                && name.as_deref().is_none_or(|n| n == oname)
                && labels.matches(o)
                && fields.matches(o)
        };
        let mut changes = shared.changes.subscribe();
        let mut shutdown = shared.shutdown.subscribe();
        let mut epoch = shared.watch_epoch.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        // Where to start: after `requested`, or (no version / "0" / streaming list) from a
        // synthetic ADDED of every current object.
        let start: Result<(u64, Vec<Bytes>), Bytes> = {
            let store = shared.lock();
            let synthetic = initial_events || requested.is_none_or(|r| r == 0);
            if synthetic {
                let from = store.rv;
                let mut lines: Vec<Bytes> = store
                    .list(&rt, ns.as_deref())
                    .iter()
                    .filter(|o| matches(o))
                    .map(|o| event_line("ADDED", &shape(o)))
                    .collect();
                if initial_events {
                    lines.push(event_line(
                        "BOOKMARK",
                        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {
                            "resourceVersion": from.to_string(),
                            "annotations": {"k8s.io/initial-events-end": "true"}
                        }}),
                    ));
                }
                Ok((from, lines))
            } else {
                let from = requested.unwrap_or_default();
                if from < store.compacted_through || from > store.rv {
                    let err = ApiError::expired(from, store.compacted_through.max(1));
                    Err(event_line("ERROR", &err.to_status()))
                } else {
                    Ok((from, Vec::new()))
                }
            }
        };
        let mut from = match start {
            Ok((from, lines)) => {
                for l in lines {
                    if tx.send(l).await.is_err() {
                        return;
                    }
                }
                from
            }
            Err(line) => {
                let _ = tx.send(line).await;
                return;
            }
        };
        let mut last_sent = Instant::now();
        loop {
            let batch: Result<Vec<Bytes>, ApiError> = {
                let store = shared.lock();
                if from < store.compacted_through {
                    Err(ApiError::expired(from, store.compacted_through))
                } else {
                    let mut out = Vec::new();
                    let after = from;
                    let start = store.history.partition_point(|c| c.rv <= after);
                    for c in store.history.range(start..) {
                        from = c.rv;
                        if (c.key.0.as_str(), c.key.1.as_str())
                            != (storage.0.as_str(), storage.1.as_str())
                        {
                            continue;
                        }
                        let new_match = matches(&c.object);
                        let old_match = c.old.as_ref().is_some_and(&matches);
                        if let Some(kind) = visible(c.kind, new_match, old_match) {
                            out.push(event_line(kind, &shape(&Store::present(&rt, &c.object))));
                        }
                    }
                    from = from.max(store.rv);
                    Ok(out)
                }
            };
            match batch {
                Err(e) => {
                    let _ = tx.send(event_line("ERROR", &e.to_status())).await;
                    return;
                }
                Ok(lines) => {
                    if !lines.is_empty() {
                        last_sent = Instant::now();
                    }
                    for l in lines {
                        if tx.send(l).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if bookmarks && last_sent.elapsed() >= bookmark_every {
                let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": from.to_string()}});
                if tx.send(event_line("BOOKMARK", &bm)).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
                _ = epoch.changed() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep(bookmark_every) => {},
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .unwrap_or_else(|_| Response::new(full("{}")))
}
