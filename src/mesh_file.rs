//! Posed meshes → OBJ or PLY files (the `mesh` command), for Blender and for checking meshreel against other
//! SMPL-X implementations. Vertices are written in camera coordinates, as the recovery model placed them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::pipeline::PersonMesh;

/// Output formats, chosen by the file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshFormat {
    /// Wavefront OBJ, one object (`o person_<id>`) per person.
    Obj,
    /// Binary little-endian PLY, all persons in one mesh.
    Ply,
}

impl MeshFormat {
    pub fn from_path(path: &Path) -> Option<MeshFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "obj" => Some(MeshFormat::Obj),
            "ply" => Some(MeshFormat::Ply),
            _ => None,
        }
    }
}

/// Writes the meshes to `path` atomically (a temporary file renamed into place).
pub fn write_meshes(
    path: &Path,
    format: MeshFormat,
    meshes: &[PersonMesh],
    faces: &[[u32; 3]],
    header: &str,
) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the output path names no file"))?;
    let temp = path.with_file_name(format!(".{}.partial", file_name.to_string_lossy()));
    let result = (|| {
        let mut out = BufWriter::new(File::create(&temp)?);
        match format {
            MeshFormat::Obj => write_obj(&mut out, meshes, faces, header)?,
            MeshFormat::Ply => write_ply(&mut out, meshes, faces, header)?,
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&temp, path),
        Err(error) => {
            let _ = std::fs::remove_file(&temp);
            Err(error)
        }
    }
}

fn write_obj(
    out: &mut impl Write,
    meshes: &[PersonMesh],
    faces: &[[u32; 3]],
    header: &str,
) -> io::Result<()> {
    for line in header.lines() {
        writeln!(out, "# {line}")?;
    }
    let mut first_vertex = 1u64; // OBJ indices are 1-based and global across objects.
    for mesh in meshes {
        writeln!(out, "o person_{}", mesh.person)?;
        for [x, y, z] in &mesh.vertices {
            writeln!(out, "v {x:.6} {y:.6} {z:.6}")?;
        }
        for [a, b, c] in faces {
            let [a, b, c] = [*a, *b, *c].map(|i| u64::from(i) + first_vertex);
            writeln!(out, "f {a} {b} {c}")?;
        }
        first_vertex += mesh.vertices.len() as u64;
    }
    Ok(())
}

fn write_ply(
    out: &mut impl Write,
    meshes: &[PersonMesh],
    faces: &[[u32; 3]],
    header: &str,
) -> io::Result<()> {
    let num_vertices: usize = meshes.iter().map(|m| m.vertices.len()).sum();
    writeln!(out, "ply\nformat binary_little_endian 1.0")?;
    for line in header.lines() {
        writeln!(out, "comment {line}")?;
    }
    writeln!(out, "element vertex {num_vertices}")?;
    writeln!(out, "property float x\nproperty float y\nproperty float z")?;
    writeln!(out, "element face {}", faces.len() * meshes.len())?;
    writeln!(out, "property list uchar uint vertex_indices\nend_header")?;
    for mesh in meshes {
        for vertex in &mesh.vertices {
            for value in vertex {
                out.write_all(&value.to_le_bytes())?;
            }
        }
    }
    let mut first_vertex = 0u32;
    for mesh in meshes {
        for face in faces {
            out.write_all(&[3u8])?;
            for index in face {
                out.write_all(&(index + first_vertex).to_le_bytes())?;
            }
        }
        first_vertex += mesh.vertices.len() as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::MeshOrigin;

    fn two_triangles() -> Vec<PersonMesh> {
        (0..2)
            .map(|person| PersonMesh {
                person,
                vertices: vec![[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
                origin: MeshOrigin::Params,
            })
            .collect()
    }

    #[test]
    fn obj_offsets_face_indices_per_object() {
        let mut out = Vec::new();
        write_obj(&mut out, &two_triangles(), &[[0, 1, 2]], "stand-in").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("# stand-in\no person_0\n"));
        assert!(text.contains("f 1 2 3\n"));
        assert!(text.contains("o person_1\n"));
        assert!(text.contains("f 4 5 6\n"));
    }

    #[test]
    fn ply_header_counts_all_persons() {
        let mut out = Vec::new();
        write_ply(&mut out, &two_triangles(), &[[0, 1, 2]], "stand-in").unwrap();
        let end = out.windows(10).position(|w| w == b"end_header").unwrap() + 11;
        let header = String::from_utf8_lossy(&out[..end]);
        assert!(header.contains("element vertex 6\n"));
        assert!(header.contains("element face 2\n"));
        assert_eq!(out.len() - end, 6 * 12 + 2 * 13);
    }
}
