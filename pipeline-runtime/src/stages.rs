//! The typed constructors that generated code calls, one per stage, each spanned at the stage it
//! builds. Element types flow forward through [`Stream`] markers, so every closure is checked
//! against the exact type its stage receives and a mistake is reported at that stage, not at the
//! end of a long fused chain.
//!
//! # One mistake, one error
//!
//! Each constructor states what its stage needs as one *check* trait (`MapStage`, `SinkFits`,
//! ...) whose `#[diagnostic::on_unimplemented]` says, in tandem's words, what the stage received
//! and what would fit. Everything the constructor hands back — the stage itself and the type of
//! the stream it makes — comes out through the check's associated types (`Pass<X>`, `Out`, ...).
//! So when a check fails, rustc reports it once, at the stage, and cannot name what the stage
//! makes: the later stages, the channels and the assembled segment see a type it does not know,
//! and rustc, having reported an error already, checks nothing further against it. A stage after
//! a failed one is therefore never reported for a type that exists only because of the failure.
//!
//! A check on a *function* (a closure, a partitioner, a sink with a `where` clause) has two impls
//! told apart by a marker ([`Fits`], [`Misfit`]), the second of which can never hold. With two
//! candidates rustc evaluates both, finds neither applies, and reports the check itself, with its
//! message, instead of selecting the one impl and reporting the inner cause in its own words (and
//! again at every later use of the stage).

use std::fmt::Display;
use std::marker::PhantomData;

use crate::checks::check;
pub use crate::checks::{Fits, Misfit, Unreachable};
use crate::inference::{ModelHandler, PredictionResult};
use crate::io::{Sink, Source};
use crate::ops::{
    ChannelOut, CombineOp, Discard, Filter, FlatMap, Inspect, KeyBy, Map, Partition, TryMap,
    WindowOp,
};
use crate::split::Partitioner;
pub use crate::stage_fns::*;
use crate::window::{Combined, Combiner, EventTime, WindowFn, Windowed};

/// The type of the elements of a stream, known at compile time; carries no data.
pub struct Stream<T>(PhantomData<fn() -> T>);

impl<T> Stream<T> {
    fn new() -> Self {
        Stream(PhantomData)
    }
}

// ---------------------------------------------------------------------------------------------
// The checks.

check! {
    /// A source: `read(source)`.
    #[diagnostic::on_unimplemented(
        message = "`read` takes a source, but `{Self}` is not one",
        label = "not a source",
        note = "sources: `JsonLines::<T>::open(path)`, `JsonLines::<T>::stdin()`, `Csv::<T>::open(path)`, `RedisStream::<T>::read(url)`, `Memory::new(iterable)`, or your own `impl tandem::io::Source`"
    )]
    trait SourceFits<> for S where [S: Source] { type Item = S::Item; }
}

check! {
    /// A function usable in `map`.
    #[diagnostic::on_unimplemented(
        message = "`map` receives `{T}`, but this is not a function of `{T}`",
        label = "expected a closure or function taking `{T}`",
        note = "`map` calls its function with each element by value: `map(|x: {T}| ...)`"
    )]
    trait MapStage<T> for F, super FnMut(T) -> <Self as MapStage<T, M>>::Out, Send;
    where [F: MapFn<T>] { type Out = <F as MapFn<T>>::Out; }
}

check! {
    /// A function usable in `map` right after `run_inference`.
    #[diagnostic::on_unimplemented(
        message = "this `map` follows `run_inference`, so it receives `{T}`, but this is not a function of it",
        label = "expected a closure taking `{T}`",
        note = "a model stage sends on each input with what the model said about it: take the whole result, `map(|p: PredictionResult<_, _>| ..)`, and use `p.inference` (and `p.example`, `p.model_id`)"
    )]
    trait MapAfterModel<T> for F, super FnMut(T) -> <Self as MapAfterModel<T, M>>::Out, Send;
    where [F: MapFn<T>] { type Out = <F as MapFn<T>>::Out; }
}

check! {
    /// A predicate usable in `filter`.
    #[diagnostic::on_unimplemented(
        message = "`filter` receives `{T}`, but this is not a predicate on `&{T}`",
        label = "expected a closure `|x: &{T}| -> bool`",
        note = "`filter` keeps the elements for which its function returns `true`"
    )]
    trait FilterStage<T> for F, super FnMut(&T) -> bool, Send;
    where [F: FilterFn<T>] {}
}

check! {
    /// A function usable in `flat_map`.
    #[diagnostic::on_unimplemented(
        message = "`flat_map` receives `{T}`, but this is not a function of `{T}` returning an iterable",
        label = "expected a closure `|x: {T}| -> impl IntoIterator`"
    )]
    trait FlatMapStage<T> for F, super FnMut(T) -> <Self as FlatMapStage<T, M>>::Iter, Send;
    where [F: FlatMapFn<T>] {
        type Iter = <F as FlatMapFn<T>>::Iter;
        type Item = <<F as FlatMapFn<T>>::Iter as IntoIterator>::Item;
    }
}

check! {
    /// A fallible function usable in `try_map`.
    #[diagnostic::on_unimplemented(
        message = "`try_map` receives `{T}`, but this is not a function of `{T}` returning a `Result`",
        label = "expected a closure `|x: {T}| -> Result<_, _>`",
        note = "`try_map` sends `Ok` values on and `Err`s to the dead letters"
    )]
    trait TryMapStage<T> for F, super FnMut(T) -> Result<<Self as TryMapStage<T, M>>::Ok, <Self as TryMapStage<T, M>>::Err>, Send;
    where [F: TryMapFn<T>] {
        type Ok = <F as TryMapFn<T>>::Ok;
        type Err = <F as TryMapFn<T>>::Err;
    }
}

check! {
    /// The error type of a `try_map`: its dead letters carry the error's text.
    #[diagnostic::on_unimplemented(
        message = "the error type `{Self}` of this `try_map` does not implement `Display`",
        label = "its errors could not be written to the dead letters",
        note = "return an error that implements `std::fmt::Display` (a `String`, `std::io::Error`, a `thiserror` type, ...)"
    )]
    trait ErrorFits<> for E where [E: Display] {}
}

check! {
    /// A function usable in `inspect`.
    #[diagnostic::on_unimplemented(
        message = "`inspect` receives `{T}`, but this is not a function of `&{T}`",
        label = "expected a closure `|x: &{T}|`"
    )]
    trait InspectStage<T> for F, super FnMut(&T), Send;
    where [F: InspectFn<T>] {}
}

check! {
    /// A function usable in `key_by`.
    #[diagnostic::on_unimplemented(
        message = "`key_by` receives `{T}`, but this is not a function of `&{T}`",
        label = "expected a closure `|x: &{T}| -> Key`"
    )]
    trait KeyByStage<T> for F, super FnMut(&T) -> <Self as KeyByStage<T, M>>::Key, Send;
    where [F: KeyFn<T>] { type Key = <F as KeyFn<T>>::Key; }
}

check! {
    /// A key function usable in `combine_per_key`.
    #[diagnostic::on_unimplemented(
        message = "`combine_per_key` receives windows of `{T}`, but this is not a function of `&{T}`",
        label = "expected a closure `|x: &{T}| -> Key`"
    )]
    trait CombineKeyStage<T> for F, super FnMut(&T) -> <Self as CombineKeyStage<T, M>>::Key, Send;
    where [F: KeyFn<T>] { type Key = <F as KeyFn<T>>::Key; }
}

check! {
    /// A key usable in `combine_per_key`: a window's elements are folded in a hash map by key,
    /// results come out in key order within a window, and in a run split across workers each
    /// key's accumulators travel to the worker owning the key.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot key `combine_per_key`: it must be `Ord`, `Hash`, `Serialize` and `Deserialize` (owned)",
        label = "this key function returns `{Self}`",
        note = "each window folds its elements in a hash map by key, its results come out in key order, and on several workers each key travels to the worker that owns it: return an owned key that is `Ord + Hash + serde::Serialize + serde::de::DeserializeOwned` (`String` rather than `&str`, an integer, a tuple of them, an enum deriving `Ord, Hash, Serialize, Deserialize`)"
    )]
    trait CombineKey<> for K where [K: Ord + std::hash::Hash + serde::Serialize + serde::de::DeserializeOwned] {}
}

check! {
    /// A combiner's accumulator: in a run split across workers, it travels to the worker
    /// owning its key.
    #[diagnostic::on_unimplemented(
        message = "the accumulator `{Self}` of this combiner cannot travel between workers: it must be `Serialize` and `Deserialize` (owned)",
        label = "this combiner's accumulator is `{Self}`",
        note = "on several workers, `combine_per_key` folds each worker's elements and ships the accumulators to the worker owning the key: derive `serde::Serialize, serde::Deserialize` for the accumulator (for `TopK`, for the elements it keeps)"
    )]
    trait CombinerAcc<> for A where [A: serde::Serialize + serde::de::DeserializeOwned] {}
}

check! {
    /// A combiner of the windowed elements.
    #[diagnostic::on_unimplemented(
        message = "`combine_per_key` receives windows of `{T}`, but `{Self}` cannot combine `{T}`",
        label = "this combiner does not take `{T}`",
        note = "built-in combiners: `Count`, `Sum::of(|x: &{T}| ..)`, `Mean::of(..)`, `Min::of(..)`, `Max::of(..)`, `TopK::of(k, ..)`, `Ctr::of(|x: &{T}| clicked)`; or implement `Combiner<{T}>`"
    )]
    trait CombinerFits<T> for C where [C: Combiner<T>] {
        type Acc = <C as Combiner<T>>::Acc;
        type Out = <C as Combiner<T>>::Out;
    }
}

check! {
    /// How `window` assigns elements to windows.
    #[diagnostic::on_unimplemented(
        message = "`window` receives `{T}`, but `{Self}` cannot assign `{T}` to windows",
        label = "expected `Fixed::minutes(..)`, `Sliding::new(size, period)`, ...",
        note = "`Sliding` puts an element in several windows, so its elements must be `Clone`"
    )]
    trait WindowFits<T> for W where [W: WindowFn<T>] {}
}

check! {
    /// The time function of `window` (what it returns is checked by [`EventTimeFits`]).
    #[diagnostic::on_unimplemented(
        message = "`window` receives `{T}`, but this is not a function of `&{T}` returning its event time",
        label = "expected a closure `|x: &{T}| x.time`",
        note = "the time is milliseconds (`i64`/`u64`), a `Duration` since your epoch or a `SystemTime`"
    )]
    trait TimeStage<T> for F, super Fn(&T) -> <Self as TimeStage<T, M>>::Time, Send;
    where [F: AnyTimeFn<T>] { type Time = <F as AnyTimeFn<T>>::Time; }
}

check! {
    /// What the time function of `window` returns.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not an event time",
        label = "the time function of `window` must return a time",
        note = "return milliseconds as `i64`/`u64`, a `std::time::Duration` since your epoch, or a `std::time::SystemTime`"
    )]
    trait EventTimeFits<> for U where [U: EventTime] {}
}

/// A stream consumed by several chains is copied to each, so its elements must be `Clone`.
/// (A check on the stream, not on the element: on the element rustc would suggest borrowing the
/// stream's name, which means nothing in a pipeline.)
#[diagnostic::on_unimplemented(
    message = "this stream is consumed by more than one chain, so its element type `{T}` must implement `Clone`",
    label = "consumed again here",
    note = "derive or implement `Clone` for `{T}`, or consume the stream once and `partition` it instead"
)]
pub trait FanOutElement<T, M> {
    /// `X`, once the check holds; a type rustc cannot name when it fails.
    type Pass<X>;
    fn pass<X>(x: X) -> Self::Pass<X>;
    fn copy(item: &T) -> T;
}
impl<T: Clone> FanOutElement<T, Fits> for Stream<T> {
    type Pass<X> = X;
    #[inline(always)]
    fn pass<X>(x: X) -> X {
        x
    }
    #[inline(always)]
    fn copy(item: &T) -> T {
        item.clone()
    }
}
impl<T: Clone + Unreachable> FanOutElement<T, Misfit> for Stream<T> {
    type Pass<X> = X;
    fn pass<X>(x: X) -> X {
        x
    }
    fn copy(item: &T) -> T {
        item.clone()
    }
}

check! {
    /// A sink that can write the stream's elements (see [`Sink`]).
    #[diagnostic::on_unimplemented(
        message = "`write` receives `{T}`, but `{Self}` cannot write `{T}`",
        label = "this sink cannot write `{T}`",
        note = "file sinks (`JsonLines::create`, `Csv::create`) write any `T: serde::Serialize` (`#[derive(serde::Serialize)]` on your type); `Collector<T>` collects exactly `T`",
        note = "a model's results, `PredictionResult<I, O>`, are `Serialize` when its input `I` and inference `O` are"
    )]
    trait SinkFits<T> for S where [S: Sink<T>] {}
}

check! {
    /// A model handler: `run_inference(handler)`.
    #[diagnostic::on_unimplemented(
        message = "`run_inference` takes a model handler, but `{Self}` is not one",
        label = "not a `ModelHandler`",
        note = "implement `tandem::inference::ModelHandler` for it (name, load, prepare, infer), or use a handler from `tandem-models`"
    )]
    trait IsHandler<> for H where [H: ModelHandler] {
        type Input = <H as ModelHandler>::Input;
        type Inference = <H as ModelHandler>::Inference;
    }
}

check! {
    /// A model handler the threads of its stage can share.
    #[diagnostic::on_unimplemented(
        message = "the model handler `{Self}` is shared by the threads of its stage, so it must be `Send + Sync`",
        label = "`{Self}` is not `Send + Sync`",
        note = "hold shared state in `Arc<..>` (and `Mutex`/`RwLock` where it changes) instead of `Rc`/`RefCell`/`Cell`; models are loaded per replica in `load`, so they need not be shared"
    )]
    trait HandlerShared<> for H where [H: Send + Sync] {}
}

/// The element type of a stream fed to a model handler must be the handler's `Input`.
#[diagnostic::on_unimplemented(
    message = "`run_inference` receives `{Self}`, but its handler `{H}` takes `{T}`",
    label = "`{H}` takes `{T}`, not `{Self}`",
    note = "`map` the stream to `{T}` in front of this stage",
    note = "after another `run_inference`, elements are `PredictionResult`s: `map(|p| ..p.inference..)` passes on what that model said",
    note = "a keyed handler (`keyed([..])`) takes `(key, input)` pairs, as `key_by` makes them"
)]
pub trait HandlerTakes<T, H, M> {
    /// `X`, once the check holds; a type rustc cannot name when it fails.
    type Pass<X>;
    fn pass<X>(x: X) -> Self::Pass<X>;
}
impl<T, H> HandlerTakes<T, H, Fits> for T {
    type Pass<X> = X;
    #[inline(always)]
    fn pass<X>(x: X) -> X {
        x
    }
}

/// Every input of a `merge` must carry the type of its first input.
#[diagnostic::on_unimplemented(
    message = "`merge` inputs must all carry the same type, but this one carries `{Self}` and the first carries `{T}`",
    label = "this stream carries `{Self}`",
    note = "map the streams to one type (an enum, say) before merging them"
)]
pub trait SameElementAs<T, M> {
    /// `X`, once the check holds; a type rustc cannot name when it fails.
    type Pass<X>;
    fn pass<X>(x: X) -> Self::Pass<X>;
    fn into_first(self) -> T;
}
impl<T> SameElementAs<T, Fits> for T {
    type Pass<X> = X;
    #[inline(always)]
    fn pass<X>(x: X) -> X {
        x
    }
    #[inline(always)]
    fn into_first(self) -> T {
        self
    }
}

/// `combine_per_key` folds the windows that `window` made.
#[diagnostic::on_unimplemented(
    message = "`combine_per_key` needs a windowed stream, but this stream carries `{Self}`",
    label = "not windowed",
    note = "put `window(Fixed::minutes(5), |x| x.time)` (or `Sliding::new(..)`) in front of `combine_per_key`"
)]
pub trait WindowedElement<M> {
    type Value;
    /// `X`, once the check holds; a type rustc cannot name when it fails.
    type Pass<X>;
    fn pass<X>(x: X) -> Self::Pass<X>;
}
impl<T> WindowedElement<Fits> for Windowed<T> {
    type Value = T;
    type Pass<X> = X;
    #[inline(always)]
    fn pass<X>(x: X) -> X {
        x
    }
}
impl<T: Unreachable> WindowedElement<Misfit> for Windowed<T> {
    type Value = T;
    type Pass<X> = X;
    fn pass<X>(x: X) -> X {
        x
    }
}

/// A partitioner that fits the stream and the number of bound arms (see [`Partitioner`]).
#[diagnostic::on_unimplemented(
    message = "`partition` binds {ARMS} streams, but `{Self}` cannot split `{T}` into {ARMS} arms",
    label = "this partitioner does not fit",
    note = "use `split_by(|x: &{T}| key, [..])` or `split_random(seed, [..])` with one ratio per bound stream, or a closure `|x: &{T}| -> usize`"
)]
pub trait PartitionFits<T, const ARMS: usize, M> {
    /// `X`, once the check holds; a type rustc cannot name when it fails.
    type Pass<X>;
    fn pass<X>(x: X) -> Self::Pass<X>;
}
impl<T, P: Partitioner<T, ARMS>, const ARMS: usize> PartitionFits<T, ARMS, Fits> for P {
    type Pass<X> = X;
    #[inline(always)]
    fn pass<X>(x: X) -> X {
        x
    }
}
impl<T, P, const ARMS: usize> PartitionFits<T, ARMS, Misfit> for P
where
    P: Partitioner<T, ARMS> + Unreachable,
{
    type Pass<X> = X;
    fn pass<X>(x: X) -> X {
        x
    }
}

// ---------------------------------------------------------------------------------------------
// The constructors.

#[allow(clippy::type_complexity)]
pub fn source<M, S: SourceFits<M>>(source: S) -> (S::Pass<S>, Stream<S::Item>) {
    (S::pass(source), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn map<T, M, F: MapStage<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (F::Pass<Map<F, T, ()>>, Stream<<F as MapStage<T, M>>::Out>) {
    (F::pass(Map::new(id, f)), Stream::new())
}

/// `map` right after `run_inference` (the same stage; its mistakes are explained in terms of
/// the `PredictionResult` it receives).
#[allow(clippy::type_complexity)]
pub fn map_after_model<T, M, F: MapAfterModel<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    F::Pass<Map<F, T, ()>>,
    Stream<<F as MapAfterModel<T, M>>::Out>,
) {
    (F::pass(Map::new(id, f)), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn filter<T, M, F: FilterStage<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (F::Pass<Filter<F, T, ()>>, Stream<T>) {
    (F::pass(Filter::new(id, f)), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn flat_map<T, M, F: FlatMapStage<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    F::Pass<FlatMap<F, T, ()>>,
    Stream<<F as FlatMapStage<T, M>>::Item>,
) {
    (F::pass(FlatMap::new(id, f)), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn try_map<T, M, N, F>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    <<F as TryMapStage<T, M>>::Err as ErrorFits<N>>::Pass<F::Pass<TryMap<F, T, ()>>>,
    Stream<<F as TryMapStage<T, M>>::Ok>,
)
where
    F: TryMapStage<T, M>,
    <F as TryMapStage<T, M>>::Err: ErrorFits<N>,
{
    (
        <<F as TryMapStage<T, M>>::Err as ErrorFits<N>>::pass(F::pass(TryMap::new(id, f))),
        Stream::new(),
    )
}

#[allow(clippy::type_complexity)]
pub fn inspect<T, M, F: InspectStage<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (F::Pass<Inspect<F, T, ()>>, Stream<T>) {
    (F::pass(Inspect::new(id, f)), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn key_by<T, M, F: KeyByStage<T, M>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    F::Pass<KeyBy<F, T, ()>>,
    Stream<(<F as KeyByStage<T, M>>::Key, T)>,
) {
    (F::pass(KeyBy::new(id, f)), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn partition<T, M, P: PartitionFits<T, ARMS, M>, const ARMS: usize>(
    _: &Stream<T>,
    id: u32,
    p: P,
) -> (P::Pass<Partition<P, T, (), ARMS>>, [Stream<T>; ARMS]) {
    (
        P::pass(Partition::new(id, p)),
        std::array::from_fn(|_| Stream::new()),
    )
}

/// A merge carries the type of its first input.
pub fn merged<T>(_first: &Stream<T>) -> Stream<T> {
    Stream::new()
}

/// Checks a further input of a merge; returns how its elements enter the merge's channel.
pub fn merge_input<T, M, U: SameElementAs<T, M>>(
    _merged: &Stream<T>,
    _other: &Stream<U>,
) -> U::Pass<impl Fn(U) -> T + Copy + Send> {
    U::pass(U::into_first)
}

/// Checks a stream consumed several times; returns how its elements are copied.
#[allow(clippy::type_complexity)]
pub fn fan_out<T, M>(
    _: &Stream<T>,
) -> <Stream<T> as FanOutElement<T, M>>::Pass<impl Fn(&T) -> T + Copy + Send>
where
    Stream<T>: FanOutElement<T, M>,
{
    <Stream<T> as FanOutElement<T, M>>::pass(<Stream<T> as FanOutElement<T, M>>::copy)
}

#[allow(clippy::type_complexity)]
pub fn window<T, M, N, E, W, F>(
    _: &Stream<T>,
    id: u32,
    spec: W,
    time: F,
) -> (
    <<F as TimeStage<T, M>>::Time as EventTimeFits<E>>::Pass<
        W::Pass<F::Pass<WindowOp<W, F, T, ()>>>,
    >,
    Stream<Windowed<T>>,
)
where
    W: WindowFits<T, N>,
    F: TimeStage<T, M>,
    <F as TimeStage<T, M>>::Time: EventTimeFits<E>,
{
    let op = WindowOp::new(id, spec, time);
    (
        <<F as TimeStage<T, M>>::Time as EventTimeFits<E>>::pass(W::pass(F::pass(op))),
        Stream::new(),
    )
}

#[allow(clippy::type_complexity)]
pub fn combine_per_key<V, W, F, C, M, N, O, P, Q>(
    _: &Stream<W>,
    id: u32,
    key: F,
    combiner: C,
) -> (
    <C::Acc as CombinerAcc<Q>>::Pass<
        <<F as CombineKeyStage<V, N>>::Key as CombineKey<O>>::Pass<
            C::Pass<
                F::Pass<W::Pass<CombineOp<F, C, V, <F as CombineKeyStage<V, N>>::Key, C::Acc, ()>>>,
            >,
        >,
    >,
    Stream<Combined<<F as CombineKeyStage<V, N>>::Key, C::Out>>,
)
where
    W: WindowedElement<M, Value = V>,
    F: CombineKeyStage<V, N>,
    <F as CombineKeyStage<V, N>>::Key: CombineKey<O>,
    C: CombinerFits<V, P>,
    C::Acc: CombinerAcc<Q>,
{
    let op = CombineOp::new(id, key, combiner);
    (
        <C::Acc as CombinerAcc<Q>>::pass(
            <<F as CombineKeyStage<V, N>>::Key as CombineKey<O>>::pass(C::pass(F::pass(W::pass(
                op,
            )))),
        ),
        Stream::new(),
    )
}

/// A model handler with its input `I` and inference `O`, checked by [`handler`].
pub struct Handler<H, I, O> {
    handler: H,
    types: PhantomData<fn(I) -> O>,
}

/// The first half of a model stage's check: `H` is a model handler its stage's threads can
/// share. Its input and inference types are known from here on, before the stream is compared
/// with what it takes.
#[allow(clippy::type_complexity)]
pub fn handler<M, N, H>(
    handler: H,
) -> <H as HandlerShared<N>>::Pass<
    <H as IsHandler<M>>::Pass<
        Handler<H, <H as IsHandler<M>>::Input, <H as IsHandler<M>>::Inference>,
    >,
>
where
    H: IsHandler<M> + HandlerShared<N>,
{
    let checked = Handler {
        handler,
        types: PhantomData,
    };
    <H as HandlerShared<N>>::pass(<H as IsHandler<M>>::pass(checked))
}

/// Checks a model stage: the stream carries what the handler takes (`I`, known from
/// [`handler`], passed first: were the stream's type known first, rustc would infer `I` from the
/// one impl of [`HandlerTakes`] instead of comparing the two). Hands back the handler (for
/// `Executor::run_inference`) and the stream of its results.
#[allow(clippy::type_complexity)]
pub fn run_inference<T, I, O, N, H>(
    handler: Handler<H, I, O>,
    _: &Stream<T>,
) -> (
    <T as HandlerTakes<I, H, N>>::Pass<(H, Stream<T>)>,
    Stream<PredictionResult<I, O>>,
)
where
    T: Send + HandlerTakes<I, H, N>,
{
    (
        <T as HandlerTakes<I, H, N>>::pass((handler.handler, Stream::new())),
        Stream::new(),
    )
}

/// Checks a sink; hands it back for `Executor::sink`.
pub fn sink<T, M, S: SinkFits<T, M>>(_: &Stream<T>, sink: S) -> S::Pass<(S, Stream<T>)> {
    S::pass((sink, Stream::new()))
}

pub fn discard<T>(_: &Stream<T>, id: u32) -> Discard<T> {
    Discard::new(id)
}

/// How the first input of a merge enters it: as it is.
pub fn same<T>(_first: &Stream<T>) -> impl Fn(T) -> T + Copy + Send {
    |item| item
}

/// The end of a segment feeding a boundary's channel; `into` is [`same`] or from [`merge_input`].
pub fn channel_out<T, U, C: Fn(U) -> T>(
    tx: crate::ops::Sender<T>,
    into: C,
    batch: usize,
) -> ChannelOut<T, U, C> {
    ChannelOut::new(tx, batch, into)
}
