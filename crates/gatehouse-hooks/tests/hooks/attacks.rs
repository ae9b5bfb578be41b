//! Hooks that attack the sandbox: each fails its own call, with the right reason, and the
//! engine goes on serving others.

use std::time::Duration;

use gatehouse_hooks::{HookEngine, HookFailure, HookKind, Limits, test_support};
use serde_json::json;

use crate::{engine, event, load, response_of};

fn any_event() -> String {
    event(
        "DefineAuthChallenge_Authentication",
        json!({"userAttributes": {}, "session": []}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_while_another_hook_answers() {
    let looping = load(
        engine(),
        &test_support::infinite_loop(),
        HookKind::CoreModule,
    );
    let good = load(
        engine(),
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    // Both at once (the default engine runs at least two calls at a time): the loop is
    // stopped by fuel or the deadline, the other call answers meanwhile.
    let stuck = tokio::spawn({
        let looping = looping.clone();
        async move { looping.call(any_event()).await }
    });
    let answer = good.call(any_event()).await.expect("the good hook answers");
    assert_eq!(response_of(&answer)["challengeName"], "CUSTOM_CHALLENGE");
    let failure = stuck.await.expect("joined").expect_err("the loop fails");
    assert!(
        matches!(failure, HookFailure::OutOfFuel | HookFailure::Deadline),
        "{failure:?}"
    );
    // And again: a failed call leaves nothing behind.
    let answer = good.call(any_event()).await.expect("the good hook answers");
    assert_eq!(response_of(&answer)["challengeName"], "CUSTOM_CHALLENGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_deadline_stops_a_loop_that_has_fuel_to_spare() {
    let engine = HookEngine::new(Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(30),
        ..Limits::default()
    })
    .expect("engine");
    let looping = load(
        &engine,
        &test_support::infinite_loop(),
        HookKind::CoreModule,
    );
    let failure = looping.call(any_event()).await.expect_err("stopped");
    assert_eq!(failure, HookFailure::Deadline);
    assert_eq!(failure.reason(), "deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_stops_a_loop_long_before_a_generous_deadline() {
    let engine = HookEngine::new(Limits {
        fuel: 100_000,
        deadline: Duration::from_secs(30),
        ..Limits::default()
    })
    .expect("engine");
    let looping = load(
        &engine,
        &test_support::infinite_loop(),
        HookKind::CoreModule,
    );
    let failure = looping.call(any_event()).await.expect_err("stopped");
    assert_eq!(failure, HookFailure::OutOfFuel);
    assert_eq!(failure.reason(), "out_of_fuel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_loops_at_once_wait_their_turn_and_all_stop() {
    // More stuck calls than blocking slots: they queue on the semaphore, each is stopped, and
    // a good call after them answers.
    let engine = HookEngine::new(Limits {
        deadline: Duration::from_millis(20),
        fuel: u64::MAX / 2,
        max_concurrent: 2,
        ..Limits::default()
    })
    .expect("engine");
    let looping = load(
        &engine,
        &test_support::infinite_loop(),
        HookKind::CoreModule,
    );
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let h = looping.clone();
            tokio::spawn(async move { h.call(any_event()).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.expect("joined"), Err(HookFailure::Deadline));
    }
    let good = load(
        &engine,
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    assert!(good.call(any_event()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_fails_for_memory() {
    let bomb = load(engine(), &test_support::memory_bomb(), HookKind::CoreModule);
    let failure = bomb.call(any_event()).await.expect_err("refused");
    assert_eq!(failure, HookFailure::Memory);
    assert_eq!(failure.reason(), "memory");
    // A smaller cap, the same end.
    let small = HookEngine::new(Limits {
        memory_bytes: 1 << 20,
        ..Limits::default()
    })
    .expect("engine");
    let bomb = load(&small, &test_support::memory_bomb(), HookKind::CoreModule);
    assert_eq!(bomb.call(any_event()).await, Err(HookFailure::Memory));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_counts_every_memory_of_the_call() {
    // Two memories of 40 MiB each: each under the 64 MiB cap, not together.
    let wasm = wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (memory $second 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64)
               (if (i32.eq (memory.grow $second (i32.const 640)) (i32.const -1))
                 (then (return (i64.const 0))))
               (if (i32.eq (memory.grow (i32.const 640)) (i32.const -1))
                 (then (unreachable)))
               (i64.const 0)))"#,
    )
    .expect("wat");
    let hook = load(engine(), &wasm, HookKind::CoreModule);
    assert_eq!(hook.call(any_event()).await, Err(HookFailure::Memory));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_declaring_more_memory_than_allowed_fails_for_memory() {
    // 2,000 pages (125 MiB) asked for at instantiation, over the 64 MiB cap.
    let wasm = wat::parse_str(
        r#"(module
             (memory (export "memory") 2000)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "handle") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .expect("wat");
    let hook = load(engine(), &wasm, HookKind::CoreModule);
    assert_eq!(hook.call(any_event()).await, Err(HookFailure::Memory));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_is_a_trap() {
    let hook = load(engine(), &test_support::trap(), HookKind::CoreModule);
    let failure = hook.call(any_event()).await.expect_err("trapped");
    match &failure {
        HookFailure::Trap(text) => assert!(text.contains("unreachable"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(failure.reason(), "trap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_traps_on_the_guest_stack() {
    let wasm = wat::parse_str(
        r#"(module
             (memory (export "memory") 4)
             (func (export "alloc") (param i32) (result i32) (i32.const 65536))
             (func $deeper (param i64) (result i64)
               (i64.add (call $deeper (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))
             (func (export "handle") (param i32 i32) (result i64)
               (call $deeper (i64.const 0))))"#,
    )
    .expect("wat");
    let hook = load(engine(), &wasm, HookKind::CoreModule);
    let failure = hook.call(any_event()).await.expect_err("overflowed");
    match &failure {
        HookFailure::Trap(text) => assert!(text.contains("stack"), "{text}"),
        other => panic!("{other:?}"),
    }
    // The host thread survived it: the next call runs.
    let good = load(
        engine(),
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    assert!(good.call(any_event()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_answers_are_bad_output() {
    for (name, wasm) in [
        ("not UTF-8", test_support::bad_output()),
        ("a wild pointer", test_support::wild_pointer()),
        ("more than 64 KiB", test_support::huge_output()),
    ] {
        let hook = load(engine(), &wasm, HookKind::CoreModule);
        let failure = hook.call(any_event()).await.expect_err(name);
        assert!(
            matches!(failure, HookFailure::BadOutput(_)),
            "{name}: {failure:?}"
        );
        assert_eq!(failure.reason(), "bad_output");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_cap_is_the_engines() {
    // The WAT hook's Create answer is 154 bytes.
    let engine = HookEngine::new(Limits {
        max_output_bytes: 100,
        ..Limits::default()
    })
    .expect("engine");
    let hook = load(
        &engine,
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    let create = event(
        "CreateAuthChallenge_Authentication",
        json!({"userAttributes": {}, "challengeName": "CUSTOM_CHALLENGE", "session": []}),
    );
    assert!(matches!(
        hook.call(create).await,
        Err(HookFailure::BadOutput(_))
    ));
    // A shorter answer passes.
    assert!(hook.call(any_event()).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_starts_from_a_fresh_instance() {
    let hook = load(engine(), &test_support::counter(), HookKind::CoreModule);
    for _ in 0..3 {
        assert_eq!(hook.call(any_event()).await.as_deref(), Ok("1"));
    }
    // A second load of the same artifact (another pool's copy) starts from scratch too.
    let other = load(engine(), &test_support::counter(), HookKind::CoreModule);
    assert_eq!(other.call(any_event()).await.as_deref(), Ok("1"));
    assert_eq!(hook.call(any_event()).await.as_deref(), Ok("1"));
}

#[test]
fn a_call_outside_an_async_runtime_runs_on_the_calling_thread() {
    let hook = load(
        engine(),
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    let answer = hook.call_blocking(&any_event()).expect("answers");
    assert_eq!(response_of(&answer)["challengeName"], "CUSTOM_CHALLENGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_held_to_the_same_limits() {
    let looping = load(
        engine(),
        &test_support::component_infinite_loop(),
        HookKind::Component,
    );
    let failure = looping.call(any_event()).await.expect_err("stopped");
    assert!(
        matches!(failure, HookFailure::OutOfFuel | HookFailure::Deadline),
        "{failure:?}"
    );
    let refusing = load(
        engine(),
        &test_support::component_refusing(),
        HookKind::Component,
    );
    assert_eq!(
        refusing.call(any_event()).await,
        Err(HookFailure::Refused("not today".into()))
    );
    let wild = load(
        engine(),
        &test_support::component_wild_pointer(),
        HookKind::Component,
    );
    let failure = wild.call(any_event()).await.expect_err("refused");
    assert!(matches!(failure, HookFailure::BadOutput(_)), "{failure:?}");
}

#[tokio::test] // one runtime thread: a call that held it would hold everything
async fn a_stuck_hook_never_holds_the_async_runtime() {
    let engine = HookEngine::new(Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_secs(2),
        max_concurrent: 2,
        ..Limits::default()
    })
    .expect("engine");
    let looping = load(
        &engine,
        &test_support::infinite_loop(),
        HookKind::CoreModule,
    );
    let good = load(
        &engine,
        &test_support::wat_custom_auth(),
        HookKind::CoreModule,
    );
    let stuck = tokio::spawn(async move { looping.call(any_event()).await });
    tokio::task::yield_now().await;
    // While the loop spins on its blocking thread, this runtime's only thread runs other
    // tasks: another hook's call comes back long before the loop's deadline.
    let answer = good.call(any_event()).await.expect("answers");
    assert_eq!(response_of(&answer)["challengeName"], "CUSTOM_CHALLENGE");
    assert!(!stuck.is_finished(), "the loop is still running meanwhile");
    assert_eq!(stuck.await.expect("joined"), Err(HookFailure::Deadline));
}
