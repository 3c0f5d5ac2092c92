//! Replays `tests/fixtures/flow/`: `block`/`rescue`/`always`,
//! `any_errors_fatal`, `include_tasks` and roles ordering, recorded from
//! ansible-playbook 2.19 by `tests/fixtures/serial/record.py`.

use super::serial::{fixtures, replay_in};

macro_rules! scenarios {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                replay_in(&fixtures("flow"), stringify!($name));
            }
        )*

        #[test]
        fn every_recorded_scenario_is_replayed() {
            let mut listed = vec![$(stringify!($name)),*];
            listed.sort_unstable();
            let mut found: Vec<String> = std::fs::read_dir(fixtures("flow"))
                .unwrap()
                .filter_map(|e| {
                    let name = e.unwrap().file_name().into_string().unwrap();
                    name.strip_suffix(".txt").map(str::to_owned)
                })
                .collect();
            found.sort_unstable();
            assert_eq!(found, listed);
        }
    };
}

scenarios! {
    rescue_and_always
    always_without_rescue
    no_failure_skips_rescue
    nested_blocks
    any_errors_fatal_play
    any_errors_fatal_rescued
    include_loop
    any_errors_fatal_always
    rescued_under_mfp
    block_ignore_errors
    include_in_rescue_serial
    roles
}
