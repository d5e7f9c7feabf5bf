import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from conftest import blob_image
from simsearch import ConfigError, Curation, ImagesMovedError, Project, ProjectError, WeightsError
from simsearch.cli.main import main


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        centres = [(30 + 10 * i, 40), (70, 90 + 5 * i)]
        tifffile.imwrite(folder / f"img{i}.tif", blob_image((112, 144), centres, seed=i, dtype=np.uint16, channels=2)[..., :2].transpose(2, 0, 1),
                         imagej=True, metadata={"axes": "CYX"})
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    return folder


def test_create_embed_index_and_reopen(tmp_path, image_folder):
    project = Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0")
    assert len(project.dataset) == 4 and [s.path.name for s in project.dataset.skipped] == ["broken.tif"]
    assert project.channels == (0, 1) and project.geometry.scale == 3.0
    events = list(project.iter_embed())
    assert [e.status for e in events] == ["embedded"] * 4 and events[-1].done == events[-1].total == 4
    assert [e.status for e in project.iter_embed()] == ["cached"] * 4

    first = project.dataset.images[0]
    cached = project.embeddings(first.id)
    assert cached.vectors.dtype == np.float16 and isinstance(cached.vectors, np.memmap)
    fresh = project.embedder.embed(project.dataset.read(first))
    np.testing.assert_allclose(cached.vectors.astype(np.float32), fresh.vectors, atol=2e-3)

    index = project.build_index()
    query = project.patch_vector(first.id, 30, 40)
    hits = index.search(query, k=1)
    assert hits.image_ids[0, 0] == first.id
    assert np.hypot(*(hits.centres[0, 0] - [30, 40])) <= project.geometry.grid_step

    settings = yaml.safe_load((project.folder / "project.yaml").read_text())
    assert settings["backbone"]["name"] == "efficientnet-lite0"
    assert len(settings["normalization"]["low"]) == 2

    project.close()
    again = Project.open(project.folder, read_only=True)
    assert again.normalization == project.normalization and again.backbone_spec == project.backbone_spec
    assert len(again.load_index()) == len(index)


def test_project_survives_moving_the_images(tmp_path, image_folder):
    project = Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0")
    ids = [r.id for r in project.dataset]
    list(project.iter_embed())
    project.close()
    moved = shutil.move(str(image_folder), str(tmp_path / "elsewhere"))
    with pytest.raises(ImagesMovedError, match="are not at .* any more") as error:
        Project.open(project.folder)
    assert "simsearch embed NEW_PLACE --project" in error.value.hint
    with Project.open(project.folder, dataset=moved, read_only=True) as looking:  # a look records nothing
        assert [r.id for r in looking.dataset] == ids and looking.dataset.read(ids[0]).size
    with pytest.raises(ImagesMovedError):
        Project.open(project.folder)
    with Project.open(project.folder, dataset=moved) as reopened:
        assert [r.id for r in reopened.dataset] == ids
        assert [e.status for e in reopened.iter_embed()] == ["cached"] * 4
    assert Project.open(project.folder).dataset.root == reopened.dataset.root  # the new place is recorded


def test_a_project_is_not_re_pointed_to_other_images(tmp_path):
    """Re-pointing checks that the new place holds the images the curation names: other images
    (another content, so other ids) are refused, and the project stays as it was."""
    from conftest import planted_image, write_planted

    truth = write_planted(tmp_path / "images", 3)
    project = Project.create(tmp_path / "proj", tmp_path / "images", patch_size=32, backbone="efficientnet-lite0", displayed=2)
    with project:
        y, x = truth["img0.tif"][0][0]
        Curation(project).add_class("disc")
        Curation(project).add_prototype("disc", "img0.tif", (x - 16, y - 16, x + 16, y + 16))
    (tmp_path / "other").mkdir()
    for i in range(3):  # the same names, other pixels
        tifffile.imwrite(tmp_path / "other" / f"img{i}.tif", planted_image(i + 5)[0])
    with pytest.raises(ProjectError, match="does not hold the images of project .* 2 of the 2 images its curation names"):
        Project.open(project.folder, dataset=tmp_path / "other")
    with Project.open(project.folder) as again:  # still its own images, and not locked by the refused open
        assert again.dataset.root == (tmp_path / "images").resolve()


def test_project_errors(tmp_path, image_folder):
    with pytest.raises(ProjectError, match="no project"):
        Project.open(tmp_path / "none")
    project = Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0")
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(project.folder, image_folder, patch_size=32)
    with pytest.raises(ConfigError, match="outside image"):
        project.patch_vector(project.dataset.images[0].id, 500, 10)
    project.close()
    path = project.folder / "project.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["format"] = 99
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ProjectError, match="newer SimSearch"):
        Project.open(project.folder)
    settings["format"] = 1
    settings["backbone"]["weights_sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(WeightsError, match="differs"):
        Project.open(project.folder).embedder


def test_cli_embed_info_search(tmp_path, image_folder, capsys):
    proj = tmp_path / "cli-proj"
    assert main(["-q", "embed", str(image_folder), "--project", str(proj), "--patch-size", "32", "--backbone", "efficientnet-lite0"]) == 0
    out = capsys.readouterr().out
    assert "embedded 4, cached 0, failed 0 of 4" in out and "broken.tif" in out
    assert main(["embed", str(image_folder), "--project", str(proj), "--patch-size", "32", "-q"]) == 0
    assert "embedded 0, cached 4" in capsys.readouterr().out
    assert main(["info", str(proj)]) == 0
    info = capsys.readouterr().out
    assert "efficientnet-lite0" in info and "embeddings cached: 4/4" in info and "channel correlation" in info
    assert main(["info", "--project", str(proj)]) == 0  # as every curation command spells it
    assert capsys.readouterr().out == info
    assert main(["info", str(proj), "--project", str(image_folder)]) == 2
    assert "two projects given" in capsys.readouterr().err
    csv_path = tmp_path / "hits.csv"
    assert main(["search", "--project", str(proj), "--image", "img1.tif", "--point", "30,40", "-k", "3", "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert " img1.tif\n" in out and "@" not in out  # images as the user named them, not ids
    hits = csv_path.read_text().splitlines()
    assert hits[0] == "rank,image,x,y,similarity" and hits[1].split(",")[1:4] == ["img1.tif", "32.0", "42.7"]
    # the old --at Y,X still works for one release, with a warning, at the same place
    assert main(["search", "--project", str(proj), "--image", "img1.tif", "--at", "40,30", "-k", "3", "--csv", str(csv_path)]) == 0
    assert "--at Y,X is deprecated" in capsys.readouterr().err and csv_path.read_text().splitlines() == hits
    # a different patch size for the same project is refused, and nothing changes
    assert main(["embed", str(image_folder), "--project", str(proj), "--patch-size", "64", "-q"]) == 2
    assert "--patch-size: project" in capsys.readouterr().err
    assert main(["info", str(image_folder)]) == 0
    assert "images: 4" in capsys.readouterr().out
    # the grid inside the image, as projects made before the border grid have it
    inside = tmp_path / "inside-proj"
    assert main(["-q", "embed", str(image_folder), "--project", str(inside), "--patch-size", "32", "--no-border"]) == 0
    assert "grid step 5.33 px, inside the image" in capsys.readouterr().out
    with Project.open(inside) as project, Project.open(proj) as bordered:
        assert not project.geometry.border and bordered.geometry.border
        image = project.dataset.find("img1.tif").id
        assert project.embeddings(image).grid_shape == (16, 22) and bordered.embeddings(image).grid_shape == (18, 24)
    assert main(["-q", "embed", str(image_folder), "--project", str(inside), "--patch-size", "32"]) == 0  # it keeps its grid
    assert "embedded 0, cached 4" in capsys.readouterr().out
    # an existing project keeps every setting the command leaves out (not the new-project
    # defaults: patch 96 refused a project made at 32); one given must be the project's
    assert main(["-q", "embed", str(image_folder), "--project", str(inside)]) == 0
    assert "embedded 0, cached 4" in capsys.readouterr().out
    for option, message in ((["--no-border"], "--no-border: project .* was made with the border grid"),
                            (["--passes", "2"], "--passes: project .* was made with 1, not 2"),
                            (["--min-cells", "2"], "--min-cells: project .* was made with 6, not 2"),
                            (["--channels", "0"], "--channels: project .* was made with 0,1, not 0"),
                            (["--patch-size", "64"], "--patch-size: project .* was made with 32x32, not 64x64")):
        assert main(["-q", "embed", str(image_folder), "--project", str(proj), *option]) == 2
        assert re.search(message, capsys.readouterr().err), option


def test_differing_settings_names_each_asked_setting_the_project_was_not_made_with(tmp_path, image_folder):
    """A setting asked as the project has it, or not asked (None, 'auto'), is not reported;
    each other one is, with the recorded and the asked value. A project file written before
    the border grid records none; a project without a patch size yet records None."""
    made = dict(patch_size=32, backbone="efficientnet-lite0", passes=1, min_cells=4, border=True, pooling=0.2, channels=[0, 1],
                normalization="dataset")
    other = dict(patch_size=48, backbone="resnet18", passes=2, min_cells=2, border=False, pooling=0.15, channels=[0],
                 normalization="image")
    with Project.create(tmp_path / "proj", image_folder, **made) as project:
        assert project.differing_settings() == {}
        assert project.differing_settings(**made) == {}
        assert project.differing_settings(patch_size=(32, 32), backbone="auto", channels=(0, 1), normalization="auto") == {}
        assert project.differing_settings(**other) == {
            "patch_size": ((32, 32), (48, 48)), "backbone": ("efficientnet-lite0", "resnet18"), "passes": (1, 2),
            "min_cells": (4, 2), "border": (True, False), "pooling": (0.2, 0.15), "channels": ((0, 1), (0,)), "normalization": ("dataset", "image")}
        for name, value in other.items():  # each alone, the others as made or not asked
            assert list(project.differing_settings(**{name: value})) == [name]
            assert list(project.differing_settings(**{**made, name: value})) == [name]
        assert project.differing_settings(patch_size=(32, 48)) == {"patch_size": ((32, 32), (32, 48))}
        with pytest.raises(ConfigError, match="normalization: 'global' is not one of"):
            project.differing_settings(normalization="global")
    with Project.create(tmp_path / "inside", image_folder, patch_size=32, backbone="efficientnet-lite0", border=False,
                        channels=[1], normalization="image") as inside:
        assert inside.differing_settings(border=False, channels=[1], normalization="image") == {}
        assert inside.differing_settings(border=True, channels=[0, 1], normalization="dataset") == {
            "border": (False, True), "channels": ((1,), (0, 1)), "normalization": ("image", "dataset")}
    settings = yaml.safe_load((tmp_path / "proj" / "project.yaml").read_text())
    del settings["embedding"]["border"], settings["geometry"]["border"]  # as written before the border grid existed
    del settings["embedding"]["pooling"], settings["geometry"]["pooling"]  # ... and before the pooling setting
    assert settings["embedding"]["fill"] == settings["geometry"]["fill"] == "background"  # new projects: the image's colour
    del settings["embedding"]["fill"], settings["geometry"]["fill"]  # ... and before the background fill
    (tmp_path / "proj" / "project.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    with Project.open(tmp_path / "proj") as old:
        assert old.differing_settings(border=True) == {"border": (False, True)} and old.differing_settings(border=False) == {}
        assert old.geometry.pooling == 0.25 and old.differing_settings(pooling=0.25) == {}
        assert old.geometry.fill == "neutral" and old.embedding_options.get("fill", "neutral") == "neutral"
        assert old.geometry.to_dict() == settings["geometry"]  # its cache keys as they were
    with Project.create(tmp_path / "unset", image_folder, backbone="efficientnet-lite0") as unset:
        assert unset.differing_settings(patch_size=32, passes=1) == {"patch_size": (None, (32, 32))}


def test_cli_embeds_images_together_with_the_same_vectors(tmp_path, image_folder, monkeypatch, capsys):
    """`embed --batch-megapixels`: same-shape images through the network together (here two of
    112 x 144 px a batch, decoded by two threads), the vectors of one image at a time; a bad
    value names the option."""
    from simsearch.features.embed import DenseEmbedder

    batches = []
    embed_batch = DenseEmbedder.embed_batch
    monkeypatch.setattr(DenseEmbedder, "embed_batch", lambda self, images: batches.append(len(images)) or embed_batch(self, images))
    vectors = {}
    for name, options in (("alone", ["--batch-megapixels", "0"]), ("together", ["--batch-megapixels", "0.04", "--decode-threads", "2"])):
        proj = tmp_path / name
        assert main(["-q", "embed", str(image_folder), "--project", str(proj), "--patch-size", "32", *options]) == 0
        with Project.open(proj, read_only=True) as project:
            vectors[name] = [np.asarray(project.embeddings(r.id).vectors, np.float32) for r in project.dataset]
    assert batches == [2, 2]
    for alone, together in zip(vectors["alone"], vectors["together"]):
        np.testing.assert_allclose(together, alone, atol=2e-3)
    with pytest.raises(SystemExit):
        main(["embed", str(image_folder), "--batch-megapixels", "-1"])
    assert "argument --batch-megapixels: expected a number of megapixels >= 0, got '-1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["process", "--out", str(tmp_path / "out"), "--decode-threads", "0"])
    assert "argument --decode-threads: expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_cli_reports_bad_dataset_clearly(tmp_path, capsys):
    assert main(["-q", "embed", str(tmp_path / "missing"), "--project", str(tmp_path / "p")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_one_writer_at_a_time(tmp_path, image_folder):
    project = Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0")
    with pytest.raises(ProjectError, match="open for writing"):
        Project.open(project.folder)
    reader = Project.open(project.folder, read_only=True)
    with pytest.raises(ProjectError, match="read-only"):
        reader.choose_displayed(2)
    project.close()
    Project.open(project.folder).close()


def test_a_patch_no_image_holds_is_refused_before_anything_is_saved(tmp_path, image_folder):
    """Images of 144x112 px: a patch of 500 px would leave every image without a patch vector."""
    with pytest.raises(ConfigError, match=r"patch size 500x500 px: no image holds one patch \(the largest, img0.tif, "
                                          r"is 144x112 px\)"):
        Project.create(tmp_path / "proj", image_folder, patch_size=500, backbone="efficientnet-lite0")
    assert not (tmp_path / "proj").exists()
    with Project.create(tmp_path / "proj", image_folder, backbone="efficientnet-lite0") as project:
        with pytest.raises(ConfigError, match="patch size 300x500 px: no image holds one patch"):
            project.set_patch_size((500, 300))
        assert project.geometry is None and project.set_patch_size(112).patch_size == (112, 112)


def test_patch_size_fixed_once_and_displayed_subset(tmp_path, image_folder):
    project = Project.create(tmp_path / "proj", image_folder, backbone="efficientnet-lite0")
    assert project.geometry is None
    with pytest.raises(ConfigError, match="no patch size yet"):
        project.embedder
    project.set_patch_size((40, 48))
    assert project.set_patch_size((40, 48)).patch_size == (40, 48)
    with pytest.raises(ConfigError, match="cannot change"):
        project.set_patch_size(32)
    chosen = project.choose_displayed(2, seed=3)
    assert len(chosen) == 2 and project.choose_displayed(2, seed=3) == chosen
    assert sorted(project.displayed + project.undisplayed) == sorted(r.id for r in project.dataset)
    assert project.choose_displayed(names=["img0.tif", "img3.tif"]) == [project.dataset.find("img0.tif").id, project.dataset.find("img3.tif").id]
    with pytest.raises(ConfigError, match="count"):
        project.choose_displayed(9)
    project.close()
    with Project.open(project.folder) as again:
        assert again.geometry.patch_size == (40, 48) and len(again.displayed) == 2
        assert again.settings["stride"] == 4.8


def test_channels_change_only_before_the_first_prototype(tmp_path):
    from simsearch import Curation

    folder = tmp_path / "four"
    folder.mkdir()
    for i in range(2):
        image = blob_image(centres=[(50, 60), (110, 140)], seed=i, channels=4)
        image[..., 3] = 255 - image[..., 3]
        tifffile.imwrite(folder / f"img{i}.tif", image)
    with Project.create(tmp_path / "proj", folder, backbone="efficientnet-lite0", patch_size=32) as project:
        assert project.channels == (0, 1, 2)
        before = project.embedder.embed(project.dataset.read(project.dataset.images[0])).vectors
        assert project.set_channels([3]) == (3,)
        after = project.embedder.embed(project.dataset.read(project.dataset.images[0])).vectors
        assert not np.allclose(before, after)  # the embedder follows the new channels
        with pytest.raises(ConfigError, match="out of range"):
            project.set_channels([4])
        project.choose_displayed(2)
        curation = Curation(project)
        curation.add_class("blob")
        curation.add_prototype("blob", "img0.tif", (44, 34, 76, 66))
        with pytest.raises(ConfigError, match="already has prototypes"):
            project.set_channels([0, 1, 2])
    with Project.open(tmp_path / "proj", read_only=True) as again:
        assert again.channels == (3,)


def test_the_project_file_appears_complete_and_once(tmp_path):
    """The displayed images are in project.yaml from the moment it exists (a kill right after
    cannot leave a project without them); two `create` at once: one wins, one is told."""
    import subprocess
    import sys

    import yaml

    from conftest import write_planted

    write_planted(tmp_path / "images", 5)
    with Project.create(tmp_path / "p", tmp_path / "images", backbone="efficientnet-lite0", displayed=3, seed=1) as project:
        saved = yaml.safe_load((tmp_path / "p" / "project.yaml").read_text())
        assert len(saved["displayed"]) == 3 and saved["displayed"] == project.displayed and saved["seed"] == 1
    command = [sys.executable, "-m", "simsearch", "-q", "create", str(tmp_path / "images"), "--project", str(tmp_path / "race"),
               "--displayed", "2", "--backbone", "efficientnet-lite0"]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((racer.wait(), racer.stderr.read()) for racer in racers)
    assert [code for code, _ in results] == [0, 2], results
    assert "already holds a project" in results[1][1]
    assert len(yaml.safe_load((tmp_path / "race" / "project.yaml").read_text())["displayed"]) == 2


def test_a_per_image_normalization_is_the_project_s_and_info_says_so(tmp_path, image_folder, capsys, monkeypatch):
    with Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0",
                        normalization="image") as project:
        assert project.normalization.per_image
        first = project.dataset.images[0]
        pixels = project.dataset.read(first)
        own = project.normalization.for_image(pixels)
        assert not own.per_image and own.low != project.normalization.low  # the image's own range, not the dataset's
    with Project.open(tmp_path / "proj") as project:
        assert project.normalization.per_image
    assert main(["info", str(tmp_path / "proj")]) == 0
    assert "normalization  per image" in capsys.readouterr().out
    def no_pass(*args, **kwargs):
        raise AssertionError("a bad mode must be refused before the pass over the images")

    monkeypatch.setattr("simsearch.project.project.compute_dataset_statistics", no_pass)
    with pytest.raises(ConfigError, match="normalization: 'global' is not one of auto, dataset, image"):
        Project.create(tmp_path / "other", image_folder, normalization="global")
    assert not (tmp_path / "other").exists()


def test_a_border_grid_finds_objects_cut_by_the_image_edge(tmp_path):
    """Discs cut by the image's edge (centres 4 px inside it) are found from a prototype on a
    whole disc with the border grid of a new project: a patch centre comes within the matching
    radius (0.3 x the patch) of each. A project whose file predates the border grid keeps its
    grid inside the image, where no centre comes that near."""
    folder = tmp_path / "images"
    folder.mkdir()
    cut = [(4, 60), (80, 196), (156, 130)]  # cut by the top, right and bottom edges
    for i in range(3):
        tifffile.imwrite(folder / f"img{i}.tif", blob_image((160, 200), cut + [(90, 100), (40, 150)], seed=i)[..., 0])
    radius = 0.3 * 24
    found = {}
    for border in (True, False):
        project = Project.create(tmp_path / f"border-{border}", folder, patch_size=24, backbone="efficientnet-lite0")
        if not border:  # as written before the border grid existed
            settings = yaml.safe_load(project.layout.settings_file.read_text())
            del settings["embedding"]["border"], settings["geometry"]["border"]
            project.layout.settings_file.write_text(yaml.safe_dump(settings, sort_keys=False))
            project.close()
            project = Project.open(tmp_path / f"border-{border}")
        with project:
            assert project.geometry.border is border
            assert ("reaching the image's edge" in project.summary()) is border
            list(project.iter_embed())
            index = project.build_index()
            query = project.patch_vector(project.dataset.images[0].id, 90, 100)
            hits = index.most_similar(query, k=18, min_distance=12)  # 15 discs, 9 of them cut
            found[border] = sum(any(np.hypot(h.y - y, h.x - x) <= radius for h in hits if h.image_id == record.id)
                                for record in project.dataset.images for y, x in cut)
    assert found == {True: 9, False: 0}, found


def test_a_store_without_its_settings_is_never_made_a_new_project(tmp_path, image_folder, capsys):
    """A folder whose project.yaml is gone but whose store.sqlite holds curation: embed and create
    refuse it, naming the folder and what is there, and change nothing (the store keeps its bytes)."""
    from simsearch import Curation

    with Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0") as project:
        Curation(project).add_class("disc")
    project.layout.settings_file.unlink()
    saved = project.layout.store_file.read_bytes()
    for command in ("embed", "create"):
        assert main(["-q", command, str(image_folder), "--project", str(project.folder)]) == 2
        error = capsys.readouterr().err
        assert f"{project.folder} holds a project store (store.sqlite" in error and "project.yaml is missing" in error
        assert "hint: restore" in error and "choose another folder" in error and "Traceback" not in error
    assert project.layout.store_file.read_bytes() == saved and not project.layout.settings_file.exists()


def test_a_damaged_project_file_is_a_clear_error_naming_it(tmp_path, image_folder, capsys):
    """project.yaml cut short anywhere, or with an entry of the wrong kind, is a ProjectError that
    names the file (and the entry), never a KeyError; the store is left as it is."""
    Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0").close()
    path = tmp_path / "proj" / "project.yaml"
    whole = path.read_text()
    for length in range(0, len(whole), 7):
        path.write_text(whole[:length])
        try:
            Project.open(tmp_path / "proj", read_only=True).close()
        except ProjectError as error:
            assert str(path) in error.message and "restore project.yaml" in error.hint, (length, error)
    path.write_text(whole[:whole.index("normalization:")])
    for args in (["class", "list"], ["embed", str(image_folder)]):
        assert main(["-q", *args, "--project", str(tmp_path / "proj")]) == 2
        assert f"error: {path}: no 'normalization' entry" in capsys.readouterr().err
    settings = yaml.safe_load(whole)
    for key, value, message in (("channels", 0, "'channels' is 0, not a list"),
                                ("dataset", {"place": "x"}, "no 'source'"),
                                ("normalization", {"low": [0]}, "normalization: malformed entry")):
        path.write_text(yaml.safe_dump({**settings, key: value}))
        with pytest.raises(ProjectError, match=re.escape(message)):
            Project.open(tmp_path / "proj")
    path.write_text(whole)
    Project.open(tmp_path / "proj").close()


def test_a_store_that_is_not_a_database_is_a_clear_error_and_left_as_it_is(tmp_path, image_folder, capsys):
    Project.create(tmp_path / "proj", image_folder, patch_size=32, backbone="efficientnet-lite0").close()
    store = tmp_path / "proj" / "store.sqlite"
    store.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    saved = store.read_bytes()
    for args in (["class", "list", "--project", str(store.parent)], ["info", str(store.parent)]):
        assert main(["-q", *args]) == 2
        error = capsys.readouterr().err
        assert f"project store {store} cannot be read as a SQLite database" in error and "hint: restore it" in error
    with pytest.raises(ProjectError, match="cannot be read as a SQLite database"):  # the lock was let go
        Project.open(store.parent)
    assert store.read_bytes() == saved


def test_an_unreadable_cache_file_is_embedded_again_with_a_warning(tmp_path, image_folder, capsys, caplog):
    """A cached embedding cut short (at its header or in its vectors) counts as not embedded: info
    says so, embed embeds that image again and indexes it, with a warning naming the image and
    the file; `embeddings` does the same."""
    proj = tmp_path / "proj"
    assert main(["-q", "embed", str(image_folder), "--project", str(proj), "--patch-size", "32"]) == 0
    with Project.open(proj, read_only=True) as project:
        first, second = (record.id for record in project.dataset.images[:2])
        paths = [project._cache_path(first), project._cache_path(second)]
        vectors = np.array(project.embeddings(first).vectors)
        indexed = len(project.load_index())
    paths[0].write_bytes(paths[0].read_bytes()[:40])  # inside its header
    paths[1].write_bytes(paths[1].read_bytes()[:1000])  # inside its vectors
    capsys.readouterr()
    assert main(["-q", "info", str(proj)]) == 0
    assert "embeddings cached: 2/4" in capsys.readouterr().out
    caplog.clear()
    assert main(["-q", "embed", str(image_folder), "--project", str(proj)]) == 0
    assert "embedded 2, cached 2, failed 0 of 4" in capsys.readouterr().out
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(first in w and str(paths[0]) in w and "cannot be read" in w for w in warnings), warnings
    with Project.open(proj, read_only=True) as project:
        np.testing.assert_array_equal(project.embeddings(first).vectors, vectors)
        assert len(project.load_index()) == indexed
        paths[0].write_bytes(b"")
        np.testing.assert_array_equal(project.embeddings(first).vectors, vectors)


def test_a_file_named_as_the_project_folder_is_a_clear_error(tmp_path, image_folder, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("kept")
    for command in ("embed", "create"):
        assert main(["-q", command, str(image_folder), "--project", str(afile), "--patch-size", "32"]) == 2
        error = capsys.readouterr().err
        assert f"error: project folder {afile} is a file, not a folder" in error and "hint: name a new folder" in error
    assert afile.read_text() == "kept"


def test_embed_warns_of_images_smaller_than_the_patch_and_search_says_the_same(tmp_path, image_folder, capsys):
    proj = str(tmp_path / "proj")
    assert main(["-q", "embed", str(image_folder), "--project", proj, "--patch-size", "200"]) == 2
    assert "error: patch size 200x200 px: no image holds one patch" in capsys.readouterr().err
    tifffile.imwrite(image_folder / "large.tif", blob_image((240, 240), [(120, 120)], dtype=np.uint16,
                                                            channels=2).transpose(2, 0, 1), imagej=True, metadata={"axes": "CYX"})
    assert main(["-q", "embed", str(image_folder), "--project", proj, "--patch-size", "200"]) == 0
    captured = capsys.readouterr()
    assert "index: 0 patch vectors" not in captured.out
    assert "warning: 4 of 5 image(s) hold no patch vectors" in captured.err
    message = "image img0.tif (144x112 px) is smaller than one patch (200x200 px)"
    assert message in captured.err and "--patch-size" in captured.err.split("hint:")[1]
    assert main(["-q", "search", "--project", proj, "--image", "img0.tif", "--point", "30,40"]) == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert main(["-q", "embed", str(image_folder), "--project", str(tmp_path / "fits"), "--patch-size", "32"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_creating_over_a_project_gives_the_command_line_s_way_first(tmp_path, image_folder, capsys):
    proj = str(tmp_path / "proj")
    assert main(["-q", "create", str(image_folder), "--project", proj]) == 0
    assert main(["-q", "create", str(image_folder), "--project", proj]) == 2
    error = capsys.readouterr().err
    assert f"error: {tmp_path / 'proj'} already holds a project" in error
    assert "hint: use that project with the other commands (--project FOLDER)" in error
    assert main(["-q", "search", "--project", proj, "--image", "img0.tif", "--point", "30,40"]) == 2
    assert "(--patch-size; Project.create(patch_size=))" in capsys.readouterr().err


def test_info_on_nothing_says_there_is_no_project_and_no_images(tmp_path, image_folder, capsys):
    assert main(["-q", "info", str(tmp_path / "nope")]) == 2
    error = capsys.readouterr().err
    assert f"error: info: no project and no images at '{tmp_path / 'nope'}'" in error and "image source" not in error
    assert main(["-q", "info", str(image_folder / "img*.tif")]) == 0  # a glob pattern exists as no path
    assert "images: 4" in capsys.readouterr().out


def test_info_on_a_dataset_says_it_checked_the_headers_only(tmp_path, capsys):
    """info reads headers only (quick on large folders): a TIFF cut short in its pixels is listed,
    and info says how far it looked; with --decode it is named as skipped."""
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "whole.tif", blob_image((64, 64))[..., 0])
    tifffile.imwrite(folder / "cut.tif", blob_image((64, 64))[..., 0])
    (folder / "cut.tif").write_bytes((folder / "cut.tif").read_bytes()[:2000])
    assert main(["-q", "info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "images: 2" in out and "files checked by their headers only" in out and "`simsearch info --decode`" in out
    assert main(["-q", "info", "--decode", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "images: 1" in out and "skipped files: 1" in out and "cut.tif:" in out and "headers only" not in out


def test_cli_embed_re_points_a_project_whose_images_moved_and_refuses_another_place(tmp_path, image_folder, capsys):
    proj = str(tmp_path / "proj")
    embed = lambda images: main(["-q", "embed", str(images), "--project", proj, "--patch-size", "32",  # noqa: E731
                                 "--backbone", "efficientnet-lite0"])
    assert embed(image_folder) == 0
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    capsys.readouterr()
    assert embed(other) == 2  # another place: before, embed used the project's images and ignored it
    err = capsys.readouterr().err
    assert f"project {Path(proj).resolve()} holds the images of {Path(image_folder).resolve()}" in err
    moved = shutil.move(str(image_folder), str(tmp_path / "moved"))
    assert main(["-q", "info", proj]) == 2
    assert "are not at" in (err := capsys.readouterr().err) and "simsearch embed NEW_PLACE --project" in err
    assert embed(moved) == 0
    out = capsys.readouterr().out
    assert f"its images moved; re-pointed to {Path(moved).resolve()}" in out and "embedded 0, cached 4" in out
    assert main(["-q", "info", proj]) == 0  # the new place is recorded
