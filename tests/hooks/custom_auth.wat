;; Gatehouse hook in WebAssembly text: a core module with the hook ABI (exports `memory`,
;; `alloc(len) -> ptr` and `handle(ptr, len) -> i64`, the answer's pointer in the high 32 bits
;; and its length in the low) that imports nothing. The tests compile it with the `wat` crate:
;; no toolchain, no Node.
;;
;; It answers Cognito's custom-authentication triggers by scanning the event's bytes (compact
;; JSON, as the service sends it) rather than parsing them, and answers only
;; `{"response": {...}}`, which is all the service reads:
;; - DefineAuthChallenge_Authentication: tokens when the last `challengeResult` is true, failure
;;   after three false ones, else another CUSTOM_CHALLENGE;
;; - CreateAuthChallenge_Authentication: the hint, and the answer "42" as a private parameter;
;; - VerifyAuthChallengeResponse_Authentication: correct when the answer given is "42".
;; Any other trigger traps.
(module
  (memory (export "memory") 1)

  ;; The bump allocator's next free byte, past the constants below. A call gets a fresh
  ;; instance, so nothing is ever freed.
  (global $heap (mut i32) (i32.const 1024))

  ;; $define: 16, 34 bytes
  (data (i32.const 16) "DefineAuthChallenge_Authentication")
  ;; $create: 56, 34 bytes
  (data (i32.const 56) "CreateAuthChallenge_Authentication")
  ;; $verify: 96, 42 bytes
  (data (i32.const 96) "VerifyAuthChallengeResponse_Authentication")
  ;; $result: 144, 18 bytes
  (data (i32.const 144) "\"challengeResult\":")
  ;; $true: 168, 4 bytes
  (data (i32.const 168) "true")
  ;; $failed: 176, 23 bytes
  (data (i32.const 176) "\"challengeResult\":false")
  ;; $answer: 200, 22 bytes
  (data (i32.const 200) "\"challengeAnswer\":\"42\"")
  ;; $r_challenge: 224, 96 bytes
  (data (i32.const 224) "{\"response\":{\"challengeName\":\"CUSTOM_CHALLENGE\",\"issueTokens\":false,\"failAuthentication\":false}}")
  ;; $r_issue: 320, 60 bytes
  (data (i32.const 320) "{\"response\":{\"issueTokens\":true,\"failAuthentication\":false}}")
  ;; $r_fail: 384, 60 bytes
  (data (i32.const 384) "{\"response\":{\"issueTokens\":false,\"failAuthentication\":true}}")
  ;; $r_create: 448, 154 bytes
  (data (i32.const 448) "{\"response\":{\"publicChallengeParameters\":{\"hint\":\"the answer to everything\"},\"privateChallengeParameters\":{\"answer\":\"42\"},\"challengeMetadata\":\"QUESTION\"}}")
  ;; $r_right: 608, 35 bytes
  (data (i32.const 608) "{\"response\":{\"answerCorrect\":true}}")
  ;; $r_wrong: 648, 36 bytes
  (data (i32.const 648) "{\"response\":{\"answerCorrect\":false}}")

  (func (export "alloc") (param $len i32) (result i32)
    (local $at i32) (local $end i32) (local $pages i32)
    (local.set $at (global.get $heap))
    (local.set $end (i32.add (local.get $at) (local.get $len)))
    (if (i32.lt_u (local.get $end) (local.get $at)) (then unreachable))
    ;; Pages missing: ceil(end / 64 KiB) - memory.size.
    (local.set $pages
      (i32.sub
        (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
        (memory.size)))
    (if (i32.gt_s (local.get $pages) (i32.const 0))
      (then
        (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable))))
    (global.set $heap (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8)))
    (local.get $at))

  ;; The offset (from $hay) of the first `needle` at or after `from`, or -1.
  (func $find (param $hay i32) (param $len i32) (param $from i32)
              (param $needle i32) (param $nlen i32) (result i32)
    (local $i i32) (local $j i32)
    (local.set $i (local.get $from))
    (block $none
      (loop $next
        (br_if $none (i32.gt_u (i32.add (local.get $i) (local.get $nlen)) (local.get $len)))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $compare
            (if (i32.eq (local.get $j) (local.get $nlen)) (then (return (local.get $i))))
            (br_if $mismatch
              (i32.ne
                (i32.load8_u (i32.add (local.get $hay) (i32.add (local.get $i) (local.get $j))))
                (i32.load8_u (i32.add (local.get $needle) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $compare)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))

  (func $contains (param $hay i32) (param $len i32) (param $needle i32) (param $nlen i32)
                  (result i32)
    (i32.ge_s
      (call $find (local.get $hay) (local.get $len) (i32.const 0) (local.get $needle) (local.get $nlen))
      (i32.const 0)))

  ;; How many times `needle` occurs.
  (func $count (param $hay i32) (param $len i32) (param $needle i32) (param $nlen i32)
               (result i32)
    (local $at i32) (local $n i32)
    (local.set $at (i32.const -1))
    (block $done
      (loop $next
        (local.set $at
          (call $find (local.get $hay) (local.get $len) (i32.add (local.get $at) (i32.const 1))
                      (local.get $needle) (local.get $nlen)))
        (br_if $done (i32.lt_s (local.get $at) (i32.const 0)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Whether the last `"challengeResult":` of the session is followed by `true`.
  (func $last_passed (param $hay i32) (param $len i32) (result i32)
    (local $at i32) (local $last i32)
    (local.set $at (i32.const -1))
    (local.set $last (i32.const -1))
    (block $done
      (loop $next
        (local.set $at
          (call $find (local.get $hay) (local.get $len) (i32.add (local.get $at) (i32.const 1))
                      (i32.const 144) (i32.const 18)))
        (br_if $done (i32.lt_s (local.get $at) (i32.const 0)))
        (local.set $last (local.get $at))
        (br $next)))
    (if (i32.lt_s (local.get $last) (i32.const 0)) (then (return (i32.const 0))))
    (i32.eq
      (call $find (local.get $hay) (local.get $len) (i32.add (local.get $last) (i32.const 18))
                  (i32.const 168) (i32.const 4))
      (i32.add (local.get $last) (i32.const 18))))

  (func $pack (param $at i32) (param $len i32) (result i64)
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $at)) (i64.const 32))
      (i64.extend_i32_u (local.get $len))))

  (func $define (param $ptr i32) (param $len i32) (result i64)
    (if (call $last_passed (local.get $ptr) (local.get $len))
      (then (return (call $pack (i32.const 320) (i32.const 60)))))
    (if (i32.ge_u (call $count (local.get $ptr) (local.get $len) (i32.const 176) (i32.const 23))
                  (i32.const 3))
      (then (return (call $pack (i32.const 384) (i32.const 60)))))
    (call $pack (i32.const 224) (i32.const 96)))

  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (if (call $contains (local.get $ptr) (local.get $len) (i32.const 16) (i32.const 34))
      (then (return (call $define (local.get $ptr) (local.get $len)))))
    (if (call $contains (local.get $ptr) (local.get $len) (i32.const 56) (i32.const 34))
      (then (return (call $pack (i32.const 448) (i32.const 154)))))
    (if (call $contains (local.get $ptr) (local.get $len) (i32.const 96) (i32.const 42))
      (then
        (if (call $contains (local.get $ptr) (local.get $len) (i32.const 200) (i32.const 22))
          (then (return (call $pack (i32.const 608) (i32.const 35)))))
        (return (call $pack (i32.const 648) (i32.const 36)))))
    unreachable)
)
