//! The simulated ad market, the two rankers, and the A/B report (statistics and chart).
