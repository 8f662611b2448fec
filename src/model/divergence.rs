//! The divergence guard of a training epoch: the epoch's running loss (an exponential moving
//! average of its step losses, weight [`DECAY`] on the past, so roughly the last ten steps)
//! must stay within `ratio` × its starting loss (the loss of its first step). A learning rate
//! far too high drives the loss up by orders of magnitude within a few steps; ordinary noise
//! and short spikes stay well below a ratio of 2 once averaged.

/// Weight of the previous running loss in the moving average.
pub const DECAY: f64 = 0.9;

/// A diverged epoch: the running loss and the starting loss it was compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diverged {
    pub running: f64,
    pub start: f64,
}

/// The guard's state over one epoch.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    ratio: f64,
    start: Option<f64>,
    running: f64,
}

impl Guard {
    /// A guard for one epoch that fails once the running loss exceeds `ratio` × the start.
    pub fn new(ratio: f32) -> Self {
        Guard {
            ratio: ratio as f64,
            start: None,
            running: 0.0,
        }
    }

    /// Feeds one step's (finite) loss.
    pub fn step(&mut self, loss: f32) -> Result<(), Diverged> {
        let loss = loss as f64;
        let Some(start) = self.start else {
            self.start = Some(loss);
            self.running = loss;
            return Ok(());
        };
        self.running = DECAY * self.running + (1.0 - DECAY) * loss;
        if self.running > self.ratio * start.max(f64::MIN_POSITIVE) {
            return Err(Diverged {
                running: self.running,
                start,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_and_spikes_pass_and_a_blow_up_fails() {
        let mut g = Guard::new(3.0);
        // A falling, noisy loss with one spike of 2.5× passes.
        for (i, l) in [9.6, 9.2, 9.9, 8.7, 24.0, 8.0, 7.5, 7.9, 7.0]
            .iter()
            .enumerate()
        {
            assert!(g.step(*l).is_ok(), "step {i}");
        }
        // A loss 30× the start fails at once (0.9 · 8.3 + 0.1 · 288 > 3 · 9.6).
        let mut g = Guard::new(3.0);
        g.step(9.6).unwrap();
        let e = g.step(288.0).unwrap_err();
        assert_eq!(e.start, 9.6f32 as f64);
        assert!(e.running > 3.0 * e.start);
        // A steady climb fails once the average has caught up, not before.
        let mut g = Guard::new(2.0);
        let mut failed_at = None;
        for s in 0..40 {
            if g.step(5.0 * 1.1f32.powi(s)).is_err() {
                failed_at = Some(s);
                break;
            }
        }
        let s = failed_at.expect("the climb is caught");
        assert!((8..20).contains(&s), "caught at step {s}");
    }
}
