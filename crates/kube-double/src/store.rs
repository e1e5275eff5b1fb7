//! The object store: every object of every type, one global resourceVersion counter, the
//! retained window of watch events, and the write pipeline (preconditions, status subresource
//! split, validation, managed fields, generation, finalizers, garbage collection).

use std::collections::{BTreeMap, VecDeque};
use std::hash::BuildHasher;

use serde_json::{json, Value};

use crate::fields;
use crate::resources::{self, ResourceType};
use crate::schema;
use crate::status::{ApiError, FieldError};

/// Key of a stored object: group, plural, namespace ("" when cluster-scoped), name.
pub type ObjKey = (String, String, String, String);

/// One change, as watches replay it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// Which object changed.
    pub key: ObjKey,
    /// The object after the change (for DELETED: its last state, with the new version).
    pub object: Value,
    /// The object before the change, so selector watches can turn a MODIFIED that leaves the
    /// selection into a DELETED.
    pub old: Option<Value>,
}

/// Who writes and how: the parts of a request the write pipeline needs.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    /// Field manager (from `fieldManager`, else derived from the user agent).
    pub manager: String,
    /// `status` for the status subresource, empty for the main resource.
    pub subresource: String,
    /// `dryRun=All`: compute and return the result, persist nothing.
    pub dry_run: bool,
}

/// All mutable state of the double.
pub struct Store {
    /// Last resourceVersion handed out.
    pub rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<ObjKey, Value>,
    /// Retained changes, oldest first.
    pub history: VecDeque<Change>,
    /// How many changes are retained for watches.
    pub history_limit: usize,
    /// Highest resourceVersion no longer covered by `history`: watches from at or after it
    /// can resume; older ones get 410 Gone.
    pub compacted_through: u64,
    hasher: std::collections::hash_map::RandomState,
    counter: u64,
}

/// The current time as the apiserver writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The object without metadata and status: what a generation bump compares.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

impl Store {
    /// An empty cluster with the built-in types and the `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease` namespaces.
    pub fn new(history_limit: usize) -> Self {
        let mut store = Self {
            rv: 0,
            types: resources::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted_through: 0,
            hasher: std::collections::hash_map::RandomState::new(),
            counter: 0,
        };
        let ns_type = store.find_type("", "v1", "namespaces").cloned();
        if let Some(rt) = ns_type {
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let ctx = WriteCtx {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                };
                if let Err(e) = store.create(&rt, "", obj, &ctx) {
                    unreachable!("seeding namespace {ns} failed: {}", e.message);
                }
            }
        }
        store
    }

    /// Every served type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at `group/version/plural`.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    fn random(&mut self) -> u64 {
        self.counter += 1;
        self.hasher.hash_one(self.counter)
    }

    fn uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.random();
        (0..5)
            .map(|_| {
                let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                r /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn record(&mut self, kind: &'static str, key: ObjKey, object: Value, old: Option<Value>) {
        self.history.push_back(Change {
            rv: self.rv,
            kind,
            key,
            object,
            old,
        });
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_through = dropped.rv;
            }
        }
    }

    /// Forget every retained change, so any watch from an older version gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_through = self.rv;
    }

    /// Where objects of `rt` are stored: `(group, plural)`. events.k8s.io/v1 Events share the
    /// core Events' storage, as upstream, so both APIs see the same objects.
    pub fn storage(rt: &ResourceType) -> (String, String) {
        if is_events_api(rt) {
            (String::new(), "events".to_string())
        } else {
            (rt.group.clone(), rt.plural.clone())
        }
    }

    fn key(rt: &ResourceType, ns: &str, name: &str) -> ObjKey {
        let ns = if rt.namespaced { ns } else { "" };
        let (group, plural) = Self::storage(rt);
        (group, plural, ns.to_string(), name.to_string())
    }

    /// The stored object, with `apiVersion` as requested.
    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(rt, ns, name))
            .map(|o| Self::present(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// An object as served at `rt`'s version (no conversion: only `apiVersion` changes, except
    /// for events.k8s.io Events, which are converted from the stored core form).
    pub fn present(rt: &ResourceType, obj: &Value) -> Value {
        let mut o = obj.clone();
        if is_events_api(rt) {
            rename_event_fields(&mut o, CORE_TO_EVENTS);
        }
        o["apiVersion"] = json!(rt.api_version());
        o["kind"] = json!(rt.kind);
        o
    }

    /// One page of the objects of `rt` in `ns` (all namespaces when `None`) that `keep`
    /// accepts, in key order: those from `offset`, at most `limit`, and how many `keep`
    /// accepts in all. Only the page is copied, so paging through many objects stays linear.
    pub fn list_page(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        keep: impl Fn(&Value) -> bool,
        offset: usize,
        limit: Option<usize>,
    ) -> (Vec<Value>, usize) {
        let (group, plural) = Self::storage(rt);
        // The events.k8s.io view renames fields: judge it as presented. Other kinds are
        // presented with only apiVersion and kind changed, which no selector reads.
        let events = is_events_api(rt);
        let from = (group.clone(), plural.clone(), String::new(), String::new());
        let mut page = Vec::new();
        let mut total = 0;
        for ((g, p, n, _), o) in self.objects.range(from..) {
            if (g, p) != (&group, &plural) {
                break;
            }
            if ns.is_some_and(|ns| ns != n) {
                continue;
            }
            let accepted = if events {
                keep(&Self::present(rt, o))
            } else {
                keep(o)
            };
            if !accepted {
                continue;
            }
            if total >= offset && limit.is_none_or(|l| page.len() < l) {
                page.push(Self::present(rt, o));
            }
            total += 1;
        }
        (page, total)
    }

    /// Objects of `rt` in `ns` (all namespaces when `None`), in key order.
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        let storage = Self::storage(rt);
        self.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                (g.as_str(), p.as_str()) == (storage.0.as_str(), storage.1.as_str())
                    && ns.is_none_or(|ns| ns == n)
            })
            .map(|(_, o)| Self::present(rt, o))
            .collect()
    }

    fn namespace_allows_create(&self, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let key = (
            String::new(),
            "namespaces".to_string(),
            String::new(),
            ns.to_string(),
        );
        match self.objects.get(&key) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if meta_str(n, "deletionTimestamp").is_some() => Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.qualified_plural()
            ))),
            Some(_) => Ok(()),
        }
    }

    fn admit(
        &self,
        rt: &ResourceType,
        name: &str,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<Vec<String>, ApiError> {
        if rt.group.is_empty() && rt.kind == "Secret" {
            crate::meta::convert_secret(obj);
        }
        let mut errors: Vec<FieldError> = Vec::new();
        if let Some(e) = crate::meta::check_name(&rt.group, &rt.kind, name) {
            errors.push(e);
        }
        errors.extend(crate::meta::check_metadata(obj));
        if rt.group == "apps" && rt.kind == "StatefulSet" {
            if let Some(old) = old {
                errors.extend(crate::meta::check_statefulset_update(obj, old));
            }
        }
        let mut pruned = Vec::new();
        if errors.is_empty() {
            if let Some(s) = &rt.schema {
                match schema::admit(s, obj, old) {
                    Ok(a) => pruned = a.pruned,
                    Err(e) => errors = e,
                }
            }
        }
        if rt.crd.is_none() && rt.kind == "CustomResourceDefinition" && errors.is_empty() {
            if let Err((field, detail)) = resources::from_crd(obj) {
                errors.push(FieldError {
                    field,
                    reason: "FieldValueInvalid",
                    detail,
                });
            }
        }
        if errors.is_empty() {
            Ok(pruned)
        } else {
            Err(ApiError::invalid(&rt.group, &rt.kind, name, &errors))
        }
    }

    /// Create an object. Returns the stored object and warnings (pruned fields).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of a create must be a JSON object",
            ));
        }
        events_input(rt, &mut obj);
        self.namespace_allows_create(rt, ns)?;
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            if let Some(prefix) = meta_str(&obj, "generateName").map(str::to_string) {
                name = format!("{prefix}{}", self.suffix());
            }
        }
        if self.objects.contains_key(&Self::key(rt, ns, &name)) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if rt.has_status && ctx.subresource.is_empty() && rt.crd.is_some() {
            // A custom resource's status cannot be set on create when it has a status subresource.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        let uid = self.uid();
        let now = now();
        {
            let m = meta_mut(&mut obj);
            m.insert("name".into(), json!(name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            for k in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                m.remove(k);
            }
            m.insert("uid".into(), json!(uid));
            m.insert("creationTimestamp".into(), json!(now));
            if rt.has_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let warnings = self.admit(rt, &name, &mut obj, None)?;
        if rt.kind == "CustomResourceDefinition" && rt.crd.is_none() {
            obj["status"] = crd_status(&obj);
        }
        if rt.kind == "Namespace" && rt.group.is_empty() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        fields::record_update(
            None,
            &mut obj,
            &ctx.manager,
            &ctx.subresource,
            &rt.api_version(),
            &now,
        );
        if ctx.dry_run {
            return Ok((obj, warnings));
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let key = Self::key(rt, ns, &name);
        self.objects.insert(key.clone(), obj.clone());
        self.record("ADDED", key.clone(), obj.clone(), None);
        self.after_crd_write(rt, &obj);
        self.collect_if_dangling(rt, &key);
        Ok((obj, warnings))
    }

    /// Replace an object (PUT, or the result of a patch), honouring the status subresource
    /// split, `resourceVersion` preconditions, finalizers and generation.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let key = Self::key(rt, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of an update must be a JSON object",
            ));
        }
        events_input(rt, &mut obj);
        if let Some(body_name) = meta_str(&obj, "name") {
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let Some(want) = meta_str(&obj, "resourceVersion") {
            if !want.is_empty() && Some(want) != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
        }
        // managedFields a client changed on purpose (kubectl's client-side to server-side apply
        // migration patches them) replace the tracked ones, as upstream.
        let client_managed = obj.pointer("/metadata/managedFields").cloned().filter(|m| {
            Some(m) != old.pointer("/metadata/managedFields") && ctx.subresource.is_empty()
        });
        if ctx.subresource == "status" {
            // A status write changes status and nothing else.
            let status = obj.get("status").cloned();
            obj = old.clone();
            match status {
                Some(s) => obj["status"] = s,
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else {
            if rt.has_status {
                match old.get("status") {
                    Some(s) => obj["status"] = s.clone(),
                    None => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            let old_meta = old["metadata"].clone();
            let requested_finalizers = finalizers(&obj);
            let m = meta_mut(&mut obj);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "generation",
                "managedFields",
            ] {
                match old_meta.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.insert("name".into(), json!(name));
            if old_meta.get("deletionTimestamp").is_some() {
                // Finalizers may only be removed from an object being deleted.
                let before = finalizers(&old);
                let added: Vec<&String> = requested_finalizers
                    .iter()
                    .filter(|f| !before.contains(f))
                    .collect();
                if !added.is_empty() {
                    let field = FieldError {
                        field: "metadata.finalizers".into(),
                        reason: "FieldValueForbidden",
                        detail: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    };
                    return Err(ApiError::invalid(&rt.group, &rt.kind, name, &[field]));
                }
            }
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let warnings = self.admit(rt, name, &mut obj, Some(&old))?;
        if rt.kind == "CustomResourceDefinition" && rt.crd.is_none() && ctx.subresource.is_empty() {
            obj["status"] = crd_status(&obj);
        }
        let mut old_for_fields = old.clone();
        if let Some(mf) = client_managed {
            meta_mut(&mut old_for_fields).insert("managedFields".into(), mf);
        }
        fields::record_update(
            Some(&old_for_fields),
            &mut obj,
            &ctx.manager,
            &ctx.subresource,
            &rt.api_version(),
            &now(),
        );
        self.finish_update(rt, key, old, obj, ctx)
            .map(|o| (o, warnings))
    }

    /// Server-side apply: create when missing, else merge with field ownership.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut config: Value,
        force: bool,
        ctx: &WriteCtx,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "an apply configuration must be an object",
            ));
        }
        events_input(rt, &mut config);
        if let Some(body_name) = meta_str(&config, "name") {
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        if config.get("apiVersion").and_then(Value::as_str).is_none()
            || config.get("kind").and_then(Value::as_str).is_none()
        {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        let key = Self::key(rt, ns, name);
        let now = now();
        // Scope the configuration to what this endpoint may write.
        if let Some(m) = config.as_object_mut() {
            if ctx.subresource == "status" {
                m.retain(|k, _| {
                    matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                });
                if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| matches!(k.as_str(), "name" | "namespace"));
                }
            } else if rt.has_status {
                m.remove("status");
            }
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                for k in [
                    "managedFields",
                    "uid",
                    "creationTimestamp",
                    "generation",
                    "deletionTimestamp",
                ] {
                    meta.remove(k);
                }
            }
        }
        let want_rv = meta_str(&config, "resourceVersion").map(str::to_string);
        let Some(old) = self.objects.get(&key).cloned() else {
            if ctx.subresource == "status" {
                return Err(ApiError::not_found(&rt.group, &rt.plural, name));
            }
            let mut obj = fields::apply(
                &json!({"metadata": {}}),
                &config,
                &ctx.manager,
                force,
                "",
                &rt.api_version(),
                &now,
            )
            .map_err(|c| ApiError::apply_conflict(&rt.api_version(), &c))?;
            let managed = obj.pointer("/metadata/managedFields").cloned();
            meta_mut(&mut obj).insert("name".into(), json!(name));
            let (mut created, warnings) = self.create(
                rt,
                ns,
                obj,
                &WriteCtx {
                    manager: ctx.manager.clone(),
                    subresource: String::new(),
                    dry_run: true,
                },
            )?;
            if let Some(mf) = managed {
                meta_mut(&mut created).insert("managedFields".into(), mf);
            }
            if ctx.dry_run {
                return Ok((created, warnings));
            }
            self.rv += 1;
            meta_mut(&mut created).insert("resourceVersion".into(), json!(self.rv.to_string()));
            self.objects.insert(key.clone(), created.clone());
            self.record("ADDED", key.clone(), created.clone(), None);
            self.after_crd_write(rt, &created);
            self.collect_if_dangling(rt, &key);
            return Ok((created, warnings));
        };
        if let Some(want) = want_rv {
            if Some(want.as_str()) != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
        }
        let force = force
            || Self::upgrades_client_side_apply(
                &old,
                &config,
                &ctx.manager,
                &rt.api_version(),
                &ctx.subresource,
            );
        let merged = fields::apply(
            &old,
            &config,
            &ctx.manager,
            force,
            &ctx.subresource,
            &rt.api_version(),
            &now,
        )
        .map_err(|c| ApiError::apply_conflict(&rt.api_version(), &c))?;
        let mut merged = merged;
        if ctx.subresource == "status" {
            // The status path of update() keeps the old object; carry the new managedFields over.
            let mf = merged.pointer("/metadata/managedFields").cloned();
            let (obj, w) = {
                let mut status_only =
                    json!({"status": merged.get("status").cloned().unwrap_or(Value::Null)});
                if merged.get("status").is_none() {
                    status_only = json!({});
                }
                let mut o = old.clone();
                match status_only.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                match mf {
                    Some(mf) => meta_mut(&mut o).insert("managedFields".into(), mf),
                    None => meta_mut(&mut o).remove("managedFields"),
                };
                let w = self.admit(rt, name, &mut o, Some(&old))?;
                (o, w)
            };
            return self.finish_update(rt, key, old, obj, ctx).map(|o| (o, w));
        }
        // Keep the apiserver-owned metadata of the stored object.
        let old_meta = old["metadata"].clone();
        let m = meta_mut(&mut merged);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.insert("name".into(), json!(name));
        merged["apiVersion"] = json!(rt.api_version());
        merged["kind"] = json!(rt.kind);
        let warnings = self.admit(rt, name, &mut merged, Some(&old))?;
        if rt.kind == "CustomResourceDefinition" && rt.crd.is_none() {
            merged["status"] = crd_status(&merged);
        }
        self.finish_update(rt, key, old, merged, ctx)
            .map(|o| (o, warnings))
    }

    /// Upstream's client-side to server-side apply upgrade: an apply whose only conflicts are
    /// with `kubectl-client-side-apply` on fields the object's last-applied-configuration
    /// annotation declares takes those fields over instead of failing.
    fn upgrades_client_side_apply(
        old: &Value,
        config: &Value,
        manager: &str,
        api_version: &str,
        subresource: &str,
    ) -> bool {
        let Some(last) = old
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        else {
            return false;
        };
        let declared = fields::leaves(&last);
        match fields::apply(old, config, manager, false, subresource, api_version, "") {
            Ok(_) => false,
            Err(conflicts) => conflicts.iter().all(|(m, f)| {
                m == "kubectl-client-side-apply" && declared.keys().any(|p| fields::render(p) == *f)
            }),
        }
    }

    fn finish_update(
        &mut self,
        rt: &ResourceType,
        key: ObjKey,
        old: Value,
        mut obj: Value,
        ctx: &WriteCtx,
    ) -> Result<Value, ApiError> {
        if rt.has_generation {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let bumped = if spec_part(&old) != spec_part(&obj) {
                generation + 1
            } else {
                generation
            };
            meta_mut(&mut obj).insert("generation".into(), json!(bumped));
        }
        meta_mut(&mut obj).insert(
            "resourceVersion".into(),
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if obj == old {
            // A no-op write changes nothing, not even the resourceVersion.
            return Ok(obj);
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        if meta_str(&obj, "deletionTimestamp").is_some() && finalizers(&obj).is_empty() {
            self.objects.remove(&key);
            self.record("DELETED", key, obj.clone(), Some(old));
            self.after_delete(rt, &obj);
            return Ok(obj);
        }
        self.objects.insert(key.clone(), obj.clone());
        self.record("MODIFIED", key.clone(), obj.clone(), Some(old));
        self.after_crd_write(rt, &obj);
        self.collect_if_dangling(rt, &key);
        Ok(obj)
    }

    /// Delete an object: with finalizers it only gets a `deletionTimestamp`; otherwise it is
    /// removed and its dependents are collected per `propagation` (`Background` default,
    /// `Foreground`, `Orphan`).
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        propagation: &str,
        precondition_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = Self::key(rt, ns, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
        };
        if let Some(want) = precondition_rv {
            if Some(want) != meta_str(&old, "resourceVersion") {
                return Err(ApiError::conflict(&rt.group, &rt.plural, name));
            }
        }
        if dry_run {
            return Ok(old);
        }
        let uid = meta_str(&old, "uid").unwrap_or_default().to_string();
        if propagation == "Orphan" {
            self.orphan_dependents(&uid);
        } else if propagation == "Foreground" {
            self.collect_dependents(&uid);
        }
        if rt.kind == "Namespace" && rt.group.is_empty() {
            let contents: Vec<ObjKey> = self
                .objects
                .keys()
                .filter(|k| k.2 == name)
                .cloned()
                .collect();
            for k in contents {
                if let Some(t) = self
                    .types
                    .iter()
                    .find(|t| t.group == k.0 && t.plural == k.1)
                    .cloned()
                {
                    self.force_remove(&t, k);
                }
            }
        }
        if !finalizers(&old).is_empty() {
            if meta_str(&old, "deletionTimestamp").is_some() {
                return Ok(Self::present(rt, &old));
            }
            let mut obj = old.clone();
            meta_mut(&mut obj).insert("deletionTimestamp".into(), json!(now()));
            meta_mut(&mut obj).insert("deletionGracePeriodSeconds".into(), json!(0));
            self.rv += 1;
            meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
            self.objects.insert(key.clone(), obj.clone());
            self.record("MODIFIED", key, obj.clone(), Some(old));
            return Ok(Self::present(rt, &obj));
        }
        let obj = self.force_remove(rt, key);
        Ok(Self::present(rt, &obj.unwrap_or(old)))
    }

    /// Remove an object now (no finalizer check), recording DELETED and collecting dependents.
    fn force_remove(&mut self, rt: &ResourceType, key: ObjKey) -> Option<Value> {
        let old = self.objects.remove(&key)?;
        let mut obj = old.clone();
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record("DELETED", key, obj.clone(), Some(old));
        self.after_delete(rt, &obj);
        Some(obj)
    }

    fn after_delete(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.kind == "CustomResourceDefinition" && rt.crd.is_none() {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            let served: Vec<ResourceType> = self
                .types
                .iter()
                .filter(|t| t.crd.as_deref() == Some(&name))
                .cloned()
                .collect();
            if let Some(t) = served.first() {
                let keys: Vec<ObjKey> = self
                    .objects
                    .keys()
                    .filter(|k| k.0 == t.group && k.1 == t.plural)
                    .cloned()
                    .collect();
                for k in keys {
                    self.force_remove(t, k);
                }
            }
            self.types.retain(|t| t.crd.as_deref() != Some(&name));
        }
        let uid = meta_str(obj, "uid").unwrap_or_default().to_string();
        self.collect_dependents(&uid);
    }

    fn dependents(&self, uid: &str) -> Vec<ObjKey> {
        self.objects
            .iter()
            .filter(|(_, o)| {
                o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"].as_str() == Some(uid)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Upstream's garbage collector deletes a dependent none of whose owners exist, looking an
    /// owner up in the dependent's namespace (or cluster-wide for a cluster-scoped owner).
    /// Upstream does it asynchronously; here it happens right after the write.
    fn collect_if_dangling(&mut self, rt: &ResourceType, key: &ObjKey) {
        let Some(refs) = self
            .objects
            .get(key)
            .and_then(|o| o.pointer("/metadata/ownerReferences"))
            .and_then(Value::as_array)
        else {
            return;
        };
        if refs.is_empty() {
            return;
        }
        let resolves = refs.iter().any(|r| {
            let uid = r["uid"].as_str().unwrap_or_default();
            self.objects
                .iter()
                .any(|(k, o)| meta_str(o, "uid") == Some(uid) && (k.2.is_empty() || k.2 == key.2))
        });
        if !resolves {
            let _ = self.delete(rt, &key.2, &key.3, "Background", None, false);
        }
    }

    fn uid_exists(&self, uid: &str) -> bool {
        self.objects
            .values()
            .any(|o| meta_str(o, "uid") == Some(uid))
    }

    /// Background garbage collection: delete dependents whose owners are all gone; drop the
    /// dangling reference from dependents that still have a live owner.
    fn collect_dependents(&mut self, uid: &str) {
        if uid.is_empty() {
            return;
        }
        for key in self.dependents(uid) {
            let Some(obj) = self.objects.get(&key).cloned() else {
                continue;
            };
            let Some(rt) = self
                .types
                .iter()
                .find(|t| t.group == key.0 && t.plural == key.1)
                .cloned()
            else {
                continue;
            };
            let refs = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let live: Vec<Value> = refs
                .iter()
                .filter(|r| {
                    r["uid"].as_str() != Some(uid)
                        && r["uid"].as_str().is_some_and(|u| self.uid_exists(u))
                })
                .cloned()
                .collect();
            if live.is_empty() {
                let _ = self.delete(&rt, &key.2, &key.3, "Background", None, false);
            } else {
                let mut new = obj.clone();
                meta_mut(&mut new).insert("ownerReferences".into(), json!(live));
                let ctx = WriteCtx {
                    manager: "kube-controller-manager".into(),
                    ..Default::default()
                };
                let _ = self.finish_update(&rt, key, obj, new, &ctx);
            }
        }
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for key in self.dependents(uid) {
            let Some(obj) = self.objects.get(&key).cloned() else {
                continue;
            };
            let Some(rt) = self
                .types
                .iter()
                .find(|t| t.group == key.0 && t.plural == key.1)
                .cloned()
            else {
                continue;
            };
            let mut new = obj.clone();
            let refs: Vec<Value> = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|r| r["uid"].as_str() != Some(uid))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if refs.is_empty() {
                meta_mut(&mut new).remove("ownerReferences");
            } else {
                meta_mut(&mut new).insert("ownerReferences".into(), json!(refs));
            }
            let ctx = WriteCtx {
                manager: "kube-controller-manager".into(),
                ..Default::default()
            };
            let _ = self.finish_update(&rt, key, obj, new, &ctx);
        }
    }

    fn after_crd_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.kind != "CustomResourceDefinition" || rt.crd.is_some() {
            return;
        }
        if let Ok(served) = resources::from_crd(obj) {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            self.types.retain(|t| t.crd.as_deref() != Some(&name));
            self.types.extend(served);
        }
    }
}

fn crd_status(crd: &Value) -> Value {
    let time = now();
    let conditions = match crd.pointer("/status/conditions") {
        Some(c) if c.as_array().is_some_and(|a| !a.is_empty()) => c.clone(),
        _ => json!([
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": time},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": time},
        ]),
    };
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"].as_bool() == Some(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "conditions": conditions,
        "storedVersions": stored,
    })
}

fn is_events_api(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events"
}

/// Field names of events.k8s.io/v1 Event (left) and core/v1 Event (right) for the same data.
const EVENTS_TO_CORE: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];
const CORE_TO_EVENTS: bool = false;
const TO_CORE: bool = true;

/// Rename an Event's fields between the events.k8s.io and core forms.
fn rename_event_fields(obj: &mut Value, to_core: bool) {
    let Some(m) = obj.as_object_mut() else { return };
    for (events, core) in EVENTS_TO_CORE {
        let (from, to) = if to_core {
            (events, core)
        } else {
            (core, events)
        };
        if let Some(v) = m.remove(*from) {
            m.insert((*to).to_string(), v);
        }
    }
}

/// Bring a write to events.k8s.io Events into the stored core form.
pub(crate) fn events_input(rt: &ResourceType, obj: &mut Value) {
    if is_events_api(rt) {
        rename_event_fields(obj, TO_CORE);
    }
}
