//! What berth decodes from the Cloudflare and Kubernetes APIs.
//!
//! Input: a first line naming what the rest is, then the body:
//! - `cloudflare list <status> <page>` / `cloudflare record <status>`: an API v4 answer;
//! - `deployment` / `ingress` / `status`: Kubernetes JSON (rollout status, load-balancer
//!   address, an API error's classification);
//! - `cpu` / `bytes`: a plan's quantity.
//!
//! Asserts: no panic; a `5xx` from Cloudflare is never a success; an Ingress address is never
//! empty; a rolled-out Deployment has every desired replica available; a parsed quantity prints
//! to a string that parses to the same quantity.
#![no_main]

use berth::adapters::dns::cloudflare::read_answer;
use berth::adapters::runtime::kubernetes::apply::{ingress_address, job_error, rollout_status};
use berth::domain::quantity::{Bytes, Cpu};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let words: Vec<&str> = head.split(' ').collect();
    match words.as_slice() {
        ["cloudflare", kind @ ("list" | "record"), status, rest @ ..] => {
            let Ok(status) = status.parse::<u16>() else {
                return;
            };
            let page = rest.first().and_then(|p| p.parse().ok()).unwrap_or(1);
            match read_answer(status, body, *kind == "list", page) {
                Ok((records, _more)) => {
                    assert!(
                        (200..300).contains(&status),
                        "HTTP {status} taken as success"
                    );
                    for record in &records {
                        let _ = record.describe();
                    }
                }
                Err(error) => {
                    let _ = (error.is_auth(), error.is_conflict(), error.is_not_found());
                    let _ = (error.is_rejected_request(), error.to_string());
                }
            }
        }
        ["deployment"] => {
            let Ok(deployment) = serde_json::from_slice::<Deployment>(body) else {
                return;
            };
            if rollout_status(&deployment).is_ok() {
                let desired = deployment
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .unwrap_or(1);
                let status = deployment.status.clone().unwrap_or_default();
                assert_eq!(status.available_replicas.unwrap_or(0), desired);
                assert!(status.updated_replicas.unwrap_or(0) >= desired);
            }
        }
        ["ingress"] => {
            let Ok(ingress) = serde_json::from_slice::<Ingress>(body) else {
                return;
            };
            if let Some(address) = ingress_address(&ingress) {
                assert!(!address.is_empty());
            }
        }
        ["status"] => {
            let Ok(status) = serde_json::from_slice::<kube::core::Status>(body) else {
                return;
            };
            let _ = format!(
                "{:#}",
                job_error(kube::Error::Api(Box::new(status)), "apply")
            );
        }
        ["cpu"] => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(cpu) = Cpu::parse(text) {
                let printed = cpu.to_string();
                assert_eq!(
                    Cpu::parse(&printed),
                    Ok(cpu),
                    "{text:?} printed as {printed:?}"
                );
            }
        }
        ["bytes"] => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(bytes) = Bytes::parse(text) {
                let printed = bytes.to_string();
                assert_eq!(
                    Bytes::parse(&printed),
                    Ok(bytes),
                    "{text:?} printed as {printed:?}"
                );
            }
        }
        _ => {}
    }
});
