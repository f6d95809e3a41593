//! The typed constructors that generated code calls, one per stage, each spanned at the stage it
//! builds. Element types flow forward through [`Stream`] markers, so every closure is checked
//! against the exact type its stage receives and a mistake is reported at that stage, not at the
//! end of a long fused chain.

use std::fmt::Display;
use std::marker::PhantomData;

use crate::io::{Sink, Source};
use crate::ops::{
    ChannelOut, CombineOp, Discard, Filter, FlatMap, Inspect, KeyBy, Map, Partition, TryMap,
    WindowOp,
};
use crate::split::Partitioner;
pub use crate::stage_fns::*;

/// The type of the elements of a stream, known at compile time; carries no data.
pub struct Stream<T>(PhantomData<fn() -> T>);

impl<T> Stream<T> {
    fn new() -> Self {
        Stream(PhantomData)
    }
}

/// `combine_per_key` folds the windows that `window` made.
#[diagnostic::on_unimplemented(
    message = "`combine_per_key` needs a windowed stream, but this stream carries `{Self}`",
    label = "not windowed",
    note = "put `window(Fixed::minutes(5), |x| x.time)` (or `Sliding::new(..)`) in front of `combine_per_key`"
)]
pub trait WindowedElement {
    type Value;
}
impl<T> WindowedElement for crate::window::Windowed<T> {
    type Value = T;
}

/// A key usable in `combine_per_key`: results come out in key order within a window.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot key `combine_per_key`: it must be `Ord`",
    label = "this key function returns `{Self}`",
    note = "return a key that is `Ord` (a string, an integer, a tuple of them, an enum deriving `Ord`)"
)]
pub trait CombineKey: Ord {}
impl<K: Ord> CombineKey for K {}

/// Every input of a `merge` must carry the type of its first input.
#[diagnostic::on_unimplemented(
    message = "`merge` inputs must all carry the same type, but this one carries `{Self}` and the first carries `{T}`",
    label = "this stream carries `{Self}`",
    note = "map the streams to one type (an enum, say) before merging them"
)]
pub trait SameElementAs<T> {
    fn into_first(self) -> T;
}
impl<T> SameElementAs<T> for T {
    #[inline(always)]
    fn into_first(self) -> T {
        self
    }
}

/// A stream consumed by several chains is copied to each, so its elements must be `Clone`.
#[diagnostic::on_unimplemented(
    message = "this stream is consumed by more than one chain, so its element type `{Self}` must implement `Clone`",
    label = "consumed again here",
    note = "derive or implement `Clone` for `{Self}`, or consume the stream once and `partition` it instead"
)]
pub trait FanOutElement: Clone {}
impl<T: Clone> FanOutElement for T {}

/// A partitioner that fits the stream and the number of bound arms (see [`Partitioner`]).
#[diagnostic::on_unimplemented(
    message = "`partition` binds {ARMS} streams, but `{Self}` cannot split `{T}` into {ARMS} arms",
    label = "this partitioner does not fit",
    note = "use `split_by(|x: &{T}| key, [..])` or `split_random(seed, [..])` with one ratio per bound stream, or a closure `|x: &{T}| -> usize`"
)]
pub trait PartitionFits<T, const ARMS: usize>: Partitioner<T, ARMS> {}
impl<T, P: Partitioner<T, ARMS>, const ARMS: usize> PartitionFits<T, ARMS> for P {}

/// A sink that can write the stream's elements (see [`Sink`]).
#[diagnostic::on_unimplemented(
    message = "`write` receives `{T}`, but `{Self}` cannot write `{T}`",
    label = "this sink cannot write `{T}`",
    note = "file sinks (`JsonLines::create`, `Csv::create`) write any `T: serde::Serialize`; `Collector<T>` collects exactly `T`"
)]
pub trait SinkFits<T>: Sink<T> {}
impl<T, S: Sink<T>> SinkFits<T> for S {}

// Each constructor checks its bound once and hands back the stage behind an opaque type that
// states the bound as proven: when a check fails, rustc reports it here, at the stage, and not a
// second time for the whole assembled segment.

pub fn source<S: Source>(source: S) -> (impl Source<Item = S::Item>, Stream<S::Item>) {
    (source, Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn map<T, F: MapFn<T>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (Map<impl MapFn<T, Out = F::Out>, T, ()>, Stream<F::Out>) {
    (Map::new(id, f), Stream::new())
}

pub fn filter<T, F: FilterFn<T>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (Filter<impl FilterFn<T>, T, ()>, Stream<T>) {
    (Filter::new(id, f), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn flat_map<T, F: FlatMapFn<T>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    FlatMap<impl FlatMapFn<T, Iter = F::Iter>, T, ()>,
    Stream<<F::Iter as IntoIterator>::Item>,
) {
    (FlatMap::new(id, f), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn try_map<T, F>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    TryMap<impl TryMapFn<T, Ok = F::Ok, Err = impl Display>, T, ()>,
    Stream<F::Ok>,
)
where
    F: TryMapFn<T>,
    F::Err: DeadLetterError,
{
    (TryMap::new(id, f), Stream::new())
}

pub fn inspect<T, F: InspectFn<T>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (Inspect<impl InspectFn<T>, T, ()>, Stream<T>) {
    (Inspect::new(id, f), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn key_by<T, F: KeyFn<T>>(
    _: &Stream<T>,
    id: u32,
    f: F,
) -> (
    KeyBy<impl KeyFn<T, Key = F::Key>, T, ()>,
    Stream<(F::Key, T)>,
) {
    (KeyBy::new(id, f), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn partition<T, P: PartitionFits<T, ARMS>, const ARMS: usize>(
    _: &Stream<T>,
    id: u32,
    p: P,
) -> (
    Partition<impl Partitioner<T, ARMS>, T, (), ARMS>,
    [Stream<T>; ARMS],
) {
    (
        Partition::new(id, p),
        std::array::from_fn(|_| Stream::new()),
    )
}

/// A merge carries the type of its first input.
pub fn merged<T>(_first: &Stream<T>) -> Stream<T> {
    Stream::new()
}

/// Checks a further input of a merge; returns how its elements enter the merge's channel.
pub fn merge_input<T, U: SameElementAs<T>>(
    _merged: &Stream<T>,
    _other: &Stream<U>,
) -> impl Fn(U) -> T + Copy + Send {
    U::into_first
}

/// Checks a stream consumed several times; returns how its elements are copied.
pub fn fan_out<T: FanOutElement>(_: &Stream<T>) -> impl Fn(&T) -> T + Copy + Send {
    T::clone
}

#[allow(clippy::type_complexity)]
pub fn window<T, W: crate::window::WindowFn<T>, F: TimeFn<T>>(
    _: &Stream<T>,
    id: u32,
    spec: W,
    time: F,
) -> (
    WindowOp<impl crate::window::WindowFn<T>, impl TimeFn<T>, T, ()>,
    Stream<crate::window::Windowed<T>>,
) {
    (WindowOp::new(id, spec, time), Stream::new())
}

#[allow(clippy::type_complexity)]
pub fn combine_per_key<W, F, C>(
    _: &Stream<W>,
    id: u32,
    key: F,
    combiner: C,
) -> (
    CombineOp<
        impl KeyFn<W::Value, Key = F::Key>,
        impl crate::window::Combiner<W::Value, Acc = C::Acc, Out = C::Out>,
        W::Value,
        F::Key,
        C::Acc,
        (),
    >,
    Stream<crate::window::Combined<F::Key, C::Out>>,
)
where
    W: WindowedElement,
    F: KeyFn<W::Value>,
    F::Key: CombineKey,
    C: crate::window::Combiner<W::Value>,
{
    (CombineOp::new(id, key, combiner), Stream::new())
}

/// A model handler whose input is the stream's element type.
#[diagnostic::on_unimplemented(
    message = "`run_inference` receives `{T}`, but `{Self}` is not a model handler taking `{T}`",
    label = "this handler does not take `{T}`",
    note = "a `ModelHandler`'s `Input` must be the stream's element type; `map` the stream to it first"
)]
pub trait HandlerFits<T>: crate::inference::ModelHandler<Input = T> {}
impl<T, H: crate::inference::ModelHandler<Input = T>> HandlerFits<T> for H {}

#[allow(clippy::type_complexity)]
pub fn run_inference<T: Send, H: HandlerFits<T>>(
    _: &Stream<T>,
    handler: H,
) -> (
    (
        impl crate::inference::ModelHandler<Input = T, Inference = H::Inference>,
        Stream<T>,
    ),
    Stream<crate::inference::PredictionResult<T, H::Inference>>,
) {
    ((handler, Stream::new()), Stream::new())
}

pub fn sink<T, S: SinkFits<T>>(_: &Stream<T>, sink: S) -> (impl Sink<T>, Stream<T>) {
    (sink, Stream::new())
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
