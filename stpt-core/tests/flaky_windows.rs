//! The incrementally kept flaky counts against a naive recomputation from the whole history.

use proptest::prelude::*;
use stpt_core::Status;
use stpt_core::history::{FLAKY_WINDOW, FlakyWindow, Outcome};

/// The last `FLAKY_WINDOW` outcomes of `statuses`, their flips and failures, counted afresh.
fn naive(statuses: &[Status]) -> (Vec<Outcome>, u32, u32) {
    let outcomes: Vec<Outcome> = statuses.iter().filter_map(|s| Outcome::of(*s)).collect();
    let kept = outcomes[outcomes.len().saturating_sub(FLAKY_WINDOW)..].to_vec();
    let flips = kept.windows(2).filter(|pair| pair[0] != pair[1]).count();
    let failures = kept.iter().filter(|o| **o == Outcome::Fail).count();
    (kept, flips as u32, failures as u32)
}

fn status() -> impl Strategy<Value = Status> {
    proptest::sample::select(Status::ALL.to_vec())
}

proptest! {
    #[test]
    fn pushed_counts_match_a_recount(statuses in proptest::collection::vec(status(), 0..80)) {
        let mut window = FlakyWindow::default();
        for (seen, status) in statuses.iter().enumerate() {
            window.push_status(*status);
            let (kept, flips, failures) = naive(&statuses[..=seen]);
            prop_assert_eq!(window.outcomes().collect::<Vec<_>>(), kept.clone());
            prop_assert_eq!(window.flips(), flips);
            prop_assert_eq!(window.failures(), failures);
            prop_assert_eq!(window.passes() as usize, kept.len() - failures as usize);
        }
        // What a backend stores reads back the same.
        let stored = FlakyWindow::from_text(&window.to_text());
        prop_assert_eq!(stored, window);
    }
}
