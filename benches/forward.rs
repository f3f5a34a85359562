//! Speed of the frame and body stages: forward pass of a real-size model, loading one frame file, loading a
//! real-size model file. Targets (issue 2): ≤ 3 ms per person, ≤ 0.3 ms per frame file, ≤ 2 s per model.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use meshreel::body::{BodyParams, ForwardOptions, load_smplx};
use meshreel::frames::npz::NpzLimits;
use meshreel::frames::{ReadOptions, SequenceOptions, discover, read_frame};
use meshreel::synth::{KeyStyle, ModelSpec, Rng, SynthModel, SynthPerson, Values, frame_contents};

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let model_path = dir.path().join("SMPLX_NEUTRAL.npz");
    SynthModel::generate(ModelSpec::real_size(), 1)
        .write(&model_path)
        .expect("write model");
    let model = load_smplx(&model_path, NpzLimits::MODEL).expect("load model");

    let mut rng = Rng::new(2);
    let values = rng.vec(165, 0.5);
    let params = BodyParams {
        pose: std::array::from_fn(|j| [values[3 * j], values[3 * j + 1], values[3 * j + 2]]),
        betas: rng.vec(10, 1.0),
        expression: rng.vec(10, 1.0),
        transl: [0.0, 0.0, 20.0],
    };
    c.bench_function("forward pass, real-size model, 1 person", |b| {
        b.iter(|| model.pose(black_box(&params), &ForwardOptions::default()))
    });
    let mut group = c.benchmark_group("forward pass, real-size model, batched");
    for batch_size in [2usize, 8, 16, 32] {
        let batch = vec![params.clone(); batch_size];
        group.throughput(Throughput::Elements(batch_size as u64));
        group.bench_function(format!("batch of {batch_size}"), |b| {
            b.iter(|| model.pose_batch(black_box(&batch), &ForwardOptions::default()))
        });
    }
    group.finish();

    // A frame file as the users have them: every OSX key, including 10,475 saved vertices (left unread).
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("frames folder");
    let mut contents = frame_contents(
        KeyStyle::OsxPrefixed,
        &[SynthPerson::random(&mut rng, 0.5)],
        false,
    );
    contents.push(
        "person_0_smplx_mesh_cam",
        &[10_475, 3],
        Values::F32(vec![0.5; 10_475 * 3]),
    );
    contents
        .write(&frames.join("frame_0001_params.npz"), false)
        .expect("write frame");
    let sequence = discover(&frames, &SequenceOptions::default()).expect("sequence");
    let slot = sequence.frame(0).expect("one frame");
    c.bench_function("load one frame file (OSX layout, 1 person)", |b| {
        b.iter(|| read_frame(black_box(slot), &ReadOptions::default()).expect("valid frame"))
    });

    let mut group = c.benchmark_group("model file");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    group.bench_function("load real-size SMPL-X layout (float32, 117 MB)", |b| {
        b.iter(|| load_smplx(black_box(&model_path), NpzLimits::MODEL).expect("load"))
    });
    group.finish();
}

criterion_group! {
    name = forward;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(forward);
