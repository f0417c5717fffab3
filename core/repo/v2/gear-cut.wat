;; FastCDC's cut (docs/FORMAT.md §15.2) in WebAssembly: the same arithmetic as cutLength in chunker.ts,
;; about four times its speed. Build: `npm run build:wasm` (wabt's wat2wasm) writes gear-cut-wasm.ts.
;;
;; Memory: bytes 0..1023 hold the gear table (256 × u32, little-endian); the caller copies page bytes
;; anywhere after it and passes their address.
(module
  (memory (export "memory") 1)

  ;; cut(at, left, min, avg, max, maskS, maskL) → the length of the chunk starting at address `at`, with
  ;; `left` bytes left in the page. Reads at most min(left, max) bytes from `at`.
  (func (export "cut")
    (param $at i32) (param $left i32) (param $min i32) (param $avg i32) (param $max i32)
    (param $maskS i32) (param $maskL i32) (result i32)
    (local $p i32) (local $normal i32) (local $end i32) (local $hash i32)
    ;; the page's last bytes, no longer than the minimum, are one chunk
    (if (i32.le_u (local.get $left) (local.get $min)) (then (return (local.get $left))))
    ;; n = min(left, max); the small mask until min(n, avg), the large one after
    (if (i32.gt_u (local.get $left) (local.get $max)) (then (local.set $left (local.get $max))))
    (local.set $end (i32.add (local.get $at) (local.get $left)))
    (local.set $normal (i32.add (local.get $at)
      (select (local.get $left) (local.get $avg) (i32.lt_u (local.get $left) (local.get $avg)))))
    ;; hash = 0 at the minimum, then hash = (hash << 1) + G[byte] mod 2^32
    (local.set $p (i32.add (local.get $at) (local.get $min)))
    (block $small
      (loop $strict
        (br_if $small (i32.ge_u (local.get $p) (local.get $normal)))
        (local.set $hash (i32.add (i32.shl (local.get $hash) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u (local.get $p)) (i32.const 2)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $strict (i32.and (local.get $hash) (local.get $maskS)))
        (return (i32.sub (local.get $p) (local.get $at)))))
    (block $large
      (loop $loose
        (br_if $large (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $hash (i32.add (i32.shl (local.get $hash) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u (local.get $p)) (i32.const 2)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br_if $loose (i32.and (local.get $hash) (local.get $maskL)))
        (return (i32.sub (local.get $p) (local.get $at)))))
    ;; no cut point: the chunk is n bytes
    (local.get $left))
)
