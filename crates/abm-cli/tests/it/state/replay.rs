//! Issue 13: `abm run` at successive as_of dates over one final export gives the clusters that
//! live runs (each over the export of its day) gave.

use super::*;
use crate::answers::timeline;
use crate::both_backends;

fn replay_matches_live(db_replay: Db, db_live: Db) {
    let replay = World::new(db_replay);
    let live = World::new(db_live);
    timeline::final_export(&replay.dir.path().join("final"));
    replay.import("final");
    for as_of in timeline::DATES {
        let set = format!("live-{as_of}");
        timeline::live_export(&live.dir.path().join(&set), as_of);
        live.import(&set);
        let a = replay.run(as_of);
        let b = live.run(as_of);
        assert_eq!(a["counts"], b["counts"], "as of {as_of}");
        for id in timeline::IDS {
            let (x, y) = (replay.latest(id), live.latest(id));
            for k in ["cluster", "movement", "engagement_level", "tier"] {
                assert_eq!(x[k], y[k], "{id} {k} as of {as_of}: {x} vs {y}");
            }
        }
    }
}

fn replay(db: Db) {
    let live = match &db {
        Db::Sqlite(_) => Db::sqlite(),
        Db::Postgres { .. } => Db::postgres("replay_live").expect("postgres"),
    };
    replay_matches_live(db, live);
}

both_backends! {
    run_replayed_from_the_final_export_agrees_with_live_runs => replay;
}
