//! Speed of the drawing stages alone, for one stand-in body facing the camera as OSX frames it: preparing the
//! triangles (projection, shading) and the CPU rasterizer at 720×720, 1280×720 and 1920×1080 on one thread
//! and on all cores. Issue 4's figure for the rasterizer alone: about 0.75 ms per 720×720 frame on one core.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use meshreel::body::{BodyModel, BodyParams, ForwardOptions};
use meshreel::render::camera::Intrinsics;
use meshreel::render::cpu::render_cpu;
use meshreel::render::{OSX_LOOK, PersonView, prepare};

fn benches(c: &mut Criterion) {
    let model = BodyModel::stand_in();
    let mut params = BodyParams::default();
    // OSX's camera frame: the body turned to face the camera, 50 m away, as in the users' files.
    params.pose[0] = [std::f32::consts::PI, 0.0, 0.0];
    params.pose[16] = [0.0, 0.0, -1.0];
    params.transl = [0.0, 0.35, 50.0];
    let posed = model.pose(&params, &ForwardOptions::default());
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    for size in [(720, 720), (1280, 720), (1920, 1080)] {
        // The body about 85 % of the image's height, as auto framing would show it.
        let focal = 19_531.0 * size.1 as f32 / 720.0;
        let person = [PersonView {
            vertices: &posed.vertices,
            intrinsics: Intrinsics {
                fx: focal,
                fy: focal,
                cx: size.0 as f32 / 2.0,
                cy: size.1 as f32 / 2.0,
            },
        }];
        let label = format!("{}x{}", size.0, size.1);
        c.bench_function(&format!("prepare {label}"), |b| {
            b.iter(|| prepare(black_box(&person), &model.faces, size, &OSX_LOOK))
        });
        let triangles = prepare(&person, &model.faces, size, &OSX_LOOK);
        let image = render_cpu(&triangles, size, 1);
        let covered = image.pixels.chunks_exact(4).filter(|p| p[3] > 0).count();
        println!("{label}: {covered} pixels covered");
        for threads in [1, cores] {
            c.bench_function(&format!("cpu raster {label}, {threads} threads"), |b| {
                b.iter(|| render_cpu(black_box(&triangles), size, threads))
            });
        }
    }
}

criterion_group! {
    name = raster;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(raster);
