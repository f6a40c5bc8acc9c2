// The addon's handles. index.d.ts names them as engine.rs spells its Rust type aliases but does
// not declare them (napi-rs prints an alias's name, not its type), so this compile declares them:
// opaque, and distinct from each other. Global on purpose, to reach into index.d.ts; nothing here
// is emitted or published (the classes keep their handles private).

declare const engineHandleBrand: unique symbol
declare const clockHandleBrand: unique symbol

/** `External<Arc<ratewise::Engine>>`: an engine, from `engineNew` or `engineFromFile`. */
type EngineHandle = { readonly [engineHandleBrand]: 'EngineHandle' }

/** `External<ratewise::ManualClock>`: a manual clock, from `clockNew`. */
type ClockHandle = { readonly [clockHandleBrand]: 'ClockHandle' }
