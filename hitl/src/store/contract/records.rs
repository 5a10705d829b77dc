//! The records the contract checks store: small, valid, and differing only where a check
//! needs them to.

use serde_json::{Value, json};

use crate::model::outbox::Notify;
use crate::model::request::{RequestSpec, RequestStatus, Resolution, Response};
use crate::model::run::RunStatus;
use crate::model::step::StepKind;
use crate::store::{OutboxRecord, RequestRecord, RunRecord, StepRecord};

pub(crate) fn run(id: &str, workflow: &str, status: RunStatus, created_at: u64) -> RunRecord {
    RunRecord {
        v: 1,
        id: id.to_owned(),
        workflow: workflow.to_owned(),
        status,
        input: json!({ "n": 1 }),
        output: None,
        failure: None,
        cancel_reason: None,
        fingerprint: "f".to_owned(),
        owner: None,
        lease_until: None,
        lease_epoch: 0,
        created_at,
        updated_at: created_at,
        version: 1,
        blocked: None,
        decisions: Vec::new(),
        accepted_before: 0,
        code: 0,
    }
}

pub(crate) fn step(seq: u64, output: Value) -> StepRecord {
    StepRecord {
        version: 1,
        kind: StepKind::Task,
        seq,
        line: 1,
        input_hash: 0,
        started_at: 1,
        finished_at: Some(2),
        output,
        types: 0,
    }
}

pub(crate) fn request(id: &str, run_id: &str, created_at: u64) -> RequestRecord {
    let spec: RequestSpec = serde_json::from_value(json!({ "kind": "approval", "prompt": "Ship?" }))
        .expect("a valid request spec");
    RequestRecord {
        v: 1,
        id: id.to_owned(),
        run_id: run_id.to_owned(),
        workflow: "release".to_owned(),
        step_id: format!("ask#{id}"),
        location: "src/main.rs:1".to_owned(),
        spec,
        status: RequestStatus::Pending,
        created_at,
        expires_at: None,
        votes: Vec::new(),
        resolution: None,
        resolved_at: None,
    }
}

pub(crate) fn answered(request: &RequestRecord, by: &str, at: u64) -> RequestRecord {
    RequestRecord {
        status: RequestStatus::Answered,
        resolution: Some(Resolution::Answered {
            response: Response::approve(),
            responder: by.to_owned(),
            answered_at: at,
            votes: Vec::new(),
        }),
        resolved_at: Some(at),
        ..request.clone()
    }
}

pub(super) fn notification(id: &str, request_id: &str, next_attempt_at: u64) -> OutboxRecord {
    OutboxRecord {
        v: 1,
        id: id.to_owned(),
        request_id: request_id.to_owned(),
        run_id: "run".to_owned(),
        notify: Notify::webhook("http://127.0.0.1:9/hook"),
        attempts: Vec::new(),
        delivered_at: None,
        gave_up: false,
        withdrawn: false,
        next_attempt_at,
    }
}
