//! `write(AtEnd::new(what, report))`: a sink that hands everything it received to `report`
//! once the whole run has ended well (a failed run reports nothing), and percentiles.

use tandem::io::{Commit, Sink};

/// Collects the elements of a stream; when the run has ended well, calls `report` with them
/// (after the other outputs are in place, before the run's summary is printed). An error from
/// `report` fails the run.
pub struct AtEnd<T, F> {
    what: &'static str,
    items: Vec<T>,
    report: Option<F>,
}

impl<T, F> AtEnd<T, F>
where
    F: FnOnce(Vec<T>) -> Result<(), String>,
{
    pub fn new(what: &'static str, report: F) -> Self {
        Self {
            what,
            items: Vec::new(),
            report: Some(report),
        }
    }
}

impl<T, F> Sink<T> for AtEnd<T, F>
where
    T: Send + 'static,
    F: FnOnce(Vec<T>) -> Result<(), String> + Send + 'static,
{
    fn describe(&self) -> String {
        self.what.to_owned()
    }

    fn write(&mut self, item: T) -> Result<(), String> {
        self.items.push(item);
        Ok(())
    }

    fn uses_positions(&self) -> bool {
        false
    }

    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Ok(self.report.take().map(|report| {
            Box::new(Report {
                what: self.what,
                items: std::mem::take(&mut self.items),
                report,
            }) as Box<dyn Commit>
        }))
    }
}

struct Report<T, F> {
    what: &'static str,
    items: Vec<T>,
    report: F,
}

impl<T, F> Commit for Report<T, F>
where
    T: Send,
    F: FnOnce(Vec<T>) -> Result<(), String> + Send,
{
    fn commit(self: Box<Self>) -> tandem::Result<()> {
        let Report {
            what,
            items,
            report,
        } = *self;
        report(items).map_err(|message| tandem::Error::Write {
            what: what.to_owned(),
            message,
        })
    }
}

/// The nearest-rank percentile `q` (0..=100) of sorted values: the smallest value with at least
/// `q`% of the values at or below it. `None` for no values.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&v, 99.0), Some(10));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }
}
