//! Starting runs: by type or by name with JSON, idempotent ids, lookups and listings.

use hitl::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    sku: String,
    quantity: u32,
}

#[workflow(name = "place-order")]
async fn place_order(order: Order, express: bool) -> String {
    format!(
        "{} x {}{}",
        order.quantity,
        order.sku,
        if express { " (express)" } else { "" }
    )
}

#[workflow]
async fn ping() -> String {
    "pong".to_owned()
}

#[tokio::test]
async fn start_json_decodes_arguments_by_name() {
    let engine = Engine::temporary()
        .register(place_order)
        .register(ping)
        .open()
        .await
        .unwrap();
    let run = engine
        .start_json(
            "place-order",
            serde_json::json!({"order": {"sku": "A1", "quantity": 2}, "express": true}),
        )
        .await
        .unwrap();
    assert_eq!(
        run.wait().await.unwrap(),
        Outcome::Completed(serde_json::json!("2 x A1 (express)"))
    );
    let info = run.info().await.unwrap();
    assert_eq!(info.workflow, "place-order");
    assert_eq!(info.input["order"]["sku"], "A1");
}

#[tokio::test]
async fn an_unknown_workflow_name_lists_the_registered_ones() {
    let engine = Engine::temporary()
        .register(place_order)
        .register(ping)
        .open()
        .await
        .unwrap();
    let error = engine
        .start_json("place_order", serde_json::json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no workflow named `place_order` is registered; registered workflows: `ping`, `place-order`"
    );
}

#[tokio::test]
async fn a_wrong_json_shape_names_the_field() {
    let engine = Engine::temporary().register(place_order).open().await.unwrap();
    let cases = [
        (serde_json::json!({"express": true}), "missing field `order`"),
        (
            serde_json::json!({"order": {"sku": "A1", "quantity": "two"}, "express": true}),
            "field `order`: invalid type: string \"two\"",
        ),
        (
            serde_json::json!({"order": {"sku": "A1", "quantity": 1}, "express": true, "rush": 1}),
            "unknown field `rush`",
        ),
        (serde_json::json!([1, 2]), "expected a JSON object"),
    ];
    for (input, expected) in cases {
        let error = engine.start_json("place-order", input).await.unwrap_err();
        assert!(matches!(error, hitl::Error::InvalidInput { .. }), "{error}");
        assert!(
            error.to_string().contains(expected),
            "{error} should contain {expected}"
        );
        assert!(error.to_string().contains("`order`, `express`"), "{error}");
    }
    assert!(
        engine.runs(&Default::default()).await.unwrap().is_empty(),
        "a rejected start stored a run"
    );
}

#[tokio::test]
async fn starting_the_same_run_id_twice_returns_the_existing_run() {
    let engine = Engine::temporary().register(place_order).open().await.unwrap();
    let order = Order {
        sku: "B2".into(),
        quantity: 1,
    };
    let first = engine
        .start_with_id(place_order, "order-7", (order.clone(), false))
        .await
        .unwrap();
    let second = engine
        .start_with_id(place_order, "order-7", (order.clone(), false))
        .await
        .unwrap();
    assert_eq!(first.id(), second.id());
    assert_eq!(
        second.wait().await.unwrap(),
        Outcome::Completed("1 x B2".to_owned())
    );
    assert_eq!(engine.runs(&Default::default()).await.unwrap().len(), 1);

    let error = engine
        .start_with_id(place_order, "order-7", (order, true))
        .await
        .unwrap_err();
    assert!(matches!(error, hitl::Error::RunIdConflict { .. }), "{error}");
}

#[tokio::test]
async fn runs_can_be_looked_up_listed_and_filtered() {
    let engine = Engine::temporary()
        .register(place_order)
        .register(ping)
        .open()
        .await
        .unwrap();
    engine
        .start_with_id(ping, "p1", ())
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    let order = Order {
        sku: "C3".into(),
        quantity: 3,
    };
    engine
        .start_with_id(place_order, "o1", (order, false))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();

    let all = engine.runs(&Default::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["o1", "p1"]
    );
    let filter = hitl::RunFilter {
        workflow: Some("ping".into()),
        ..Default::default()
    };
    assert_eq!(engine.runs(&filter).await.unwrap().len(), 1);
    let filter = hitl::RunFilter {
        status: Some(RunStatus::Failed),
        ..Default::default()
    };
    assert!(engine.runs(&filter).await.unwrap().is_empty());

    assert!(matches!(
        engine.run_info("nope").await.unwrap_err(),
        hitl::Error::RunNotFound { .. }
    ));
    assert!(matches!(
        engine.run(ping, "o1").await.unwrap_err(),
        hitl::Error::WrongWorkflow { .. }
    ));
    assert_eq!(
        engine.run(ping, "p1").await.unwrap().wait().await.unwrap(),
        Outcome::Completed("pong".to_owned())
    );
}

#[tokio::test]
async fn two_workflows_with_one_name_are_rejected() {
    #[workflow(name = "ping")]
    async fn another_ping() -> u8 {
        1
    }
    let error = Engine::temporary()
        .register(ping)
        .register(another_ping)
        .open()
        .await
        .unwrap_err();
    assert!(
        matches!(error, hitl::Error::DuplicateWorkflow { ref name, version: 1 } if name == "ping"),
        "{error}"
    );
}
