//! `core::distributed` on c10d's Gloo backend, in real processes on this machine: this test
//! binary starts itself twice as rank 0 and rank 1 (the environment torchrun would set), and each
//! child checks what every collective gave it. A missing or unreachable `MASTER_ADDR` is a clear
//! error, not a hang.

use std::process::{Command, Stdio};

use ferrovis_core::distributed::{self, ReduceOp};
use tch::{Device, Kind, Tensor};

/// A port nobody listens on now (the OS's choice for an ephemeral bind, released at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs the ignored test `name` of this binary in `world` processes as ranks 0.., with the
/// variables torchrun sets plus `extra`; returns each child's (success, stdout + stderr).
pub fn run_ranks(name: &str, world: usize, extra: &[(&str, &str)]) -> Vec<(bool, String)> {
    let exe = std::env::current_exe().unwrap();
    let port = free_port().to_string();
    let children: Vec<_> = (0..world)
        .map(|rank| {
            let mut c = Command::new(&exe);
            c.args([
                "--ignored",
                "--exact",
                name,
                "--nocapture",
                "--test-threads=1",
            ])
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", &port)
            .env("FERROVIS_DIST_TIMEOUT", "60")
            // The test harness reports on stdout, which ranks other than 0 would silence.
            .env("FERROVIS_LOG_ALL_RANKS", "1")
            .env_remove("TORCHELASTIC_USE_AGENT_STORE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            for (k, v) in extra {
                c.env(k, v);
            }
            c.spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success() && text.contains("1 passed"), text)
        })
        .collect()
}

#[test]
fn collectives_give_every_rank_the_combined_tensors() {
    for (rank, (ok, text)) in run_ranks("distributed::collectives_in_child", 2, &[])
        .into_iter()
        .enumerate()
    {
        assert!(ok, "rank {rank}:\n{text}");
        assert!(
            text.contains(&format!("rank {rank} of 2: collectives ok")),
            "{text}"
        );
    }
}

/// The child side of [`collectives_give_every_rank_the_combined_tensors`].
#[test]
#[ignore = "run by collectives_give_every_rank_the_combined_tensors"]
fn collectives_in_child() {
    let g = distributed::group(Device::Cpu)
        .unwrap()
        .expect("WORLD_SIZE=2 makes a group");
    let (rank, world) = (g.rank(), g.world_size());
    assert_eq!(world, 2);
    assert_eq!(distributed::current().map(|c| c.rank()), Some(rank));
    assert_eq!(distributed::is_main_process(), rank == 0);
    let r = rank as f64;

    // Sum, average, max, min: rank 0 holds [1, 10, -1], rank 1 [2, 20, -2].
    let values = |r: f64| Tensor::from_slice(&[r + 1.0, 10.0 * (r + 1.0), -(r + 1.0)]);
    for (op, want) in [
        (ReduceOp::Sum, [3.0, 30.0, -3.0]),
        (ReduceOp::Avg, [1.5, 15.0, -1.5]),
        (ReduceOp::Max, [2.0, 20.0, -1.0]),
        (ReduceOp::Min, [1.0, 10.0, -2.0]),
    ] {
        let t = values(r);
        g.all_reduce(&[&t], op).unwrap();
        assert_eq!(Vec::<f64>::try_from(&t).unwrap(), want, "{op:?}");
    }
    // Several tensors of several kinds in one call.
    let a = Tensor::from_slice(&[rank as i64, 5]);
    let b = Tensor::ones([2, 3], (Kind::Float, Device::Cpu)) * (r + 1.0);
    g.all_reduce(&[&a, &b], ReduceOp::Sum).unwrap();
    assert_eq!(Vec::<i64>::try_from(&a).unwrap(), [1, 10]);
    assert_eq!(b.sum(Kind::Double).double_value(&[]), 6.0 * 3.0);

    // Broadcast from rank 1.
    let t = Tensor::from_slice(&[r, r * 2.0, 7.0]);
    g.broadcast(&[&t], 1).unwrap();
    assert_eq!(Vec::<f64>::try_from(&t).unwrap(), [1.0, 2.0, 7.0]);

    // All-gather in rank order.
    let parts = g
        .all_gather(&Tensor::from_slice(&[r, r + 0.5]).reshape([1, 2]))
        .unwrap();
    assert_eq!(parts.len(), 2);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.size(), [1, 2]);
        assert_eq!(
            Vec::<f64>::try_from(p.reshape([-1])).unwrap(),
            [i as f64, i as f64 + 0.5]
        );
    }

    let mut stats = [r + 1.0, 100.0];
    g.all_reduce_f64(&mut stats, ReduceOp::Sum).unwrap();
    assert_eq!(stats, [3.0, 200.0]);
    let name = g
        .broadcast_string(if rank == 0 { "runs/classify/exp3" } else { "x" }, 0)
        .unwrap();
    assert_eq!(name, "runs/classify/exp3");

    // A strided view is refused with a message, not sent as garbage.
    let strided = Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)).tr();
    let err = g
        .all_reduce(&[&strided], ReduceOp::Sum)
        .unwrap_err()
        .to_string();
    assert!(err.contains("contiguous"), "{err}");
    g.barrier().unwrap();
    println!("rank {rank} of {world}: collectives ok");
}

#[test]
fn a_missing_or_unreachable_master_is_a_clear_error() {
    // No MASTER_ADDR: refused before any connection.
    let out = run_ranks(
        "distributed::join_fails_in_child",
        1,
        &[
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", ""),
            ("FERROVIS_TEST_EXPECT", "MASTER_ADDR is not"),
        ],
    );
    assert!(out[0].0, "{}", out[0].1);
    // A store nobody serves (rank 1 of 2 alone, a port with no listener): an error naming the
    // address within the timeout, not a hang.
    let started = std::time::Instant::now();
    let out = run_ranks(
        "distributed::join_fails_in_child",
        1,
        &[
            ("WORLD_SIZE", "2"),
            ("RANK", "1"),
            ("FERROVIS_DIST_TIMEOUT", "3"),
            (
                "FERROVIS_TEST_EXPECT",
                "joining the process group at 127.0.0.1:",
            ),
        ],
    );
    assert!(out[0].0, "{}", out[0].1);
    assert!(
        started.elapsed().as_secs_f64() < 30.0,
        "took {:?}",
        started.elapsed()
    );
}

/// The child side of [`a_missing_or_unreachable_master_is_a_clear_error`]: joining fails with the
/// message `FERROVIS_TEST_EXPECT` names.
#[test]
#[ignore = "run by a_missing_or_unreachable_master_is_a_clear_error"]
fn join_fails_in_child() {
    let expect = std::env::var("FERROVIS_TEST_EXPECT").unwrap();
    let err = distributed::group(Device::Cpu).unwrap_err().to_string();
    assert!(err.contains(&expect), "{err}");
    println!("refused as expected: {err}");
}
