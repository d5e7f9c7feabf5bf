"""The curation loop driven through `simsearch` subcommands, as a script would."""

import pytest

from conftest import write_planted
from simsearch import Curation, Project
from simsearch.cli.main import main


def _setup(tmp_path):
    folder = tmp_path / "images"
    return folder, write_planted(folder, 5)


def test_scripted_session(tmp_path, capsys):
    folder, truth = _setup(tmp_path)
    proj = str(tmp_path / "proj")
    run = lambda *args: main(["-q", *args, "--project", proj])  # noqa: E731
    assert run("create", str(folder), "--displayed-images", "img0.tif", "img1.tif", "img2.tif", "--backbone", "efficientnet-lite0") == 0
    assert "displayed 3 image(s), undisplayed 2" in capsys.readouterr().out
    assert main(["-q", "info", proj]) == 0  # before the first prototype: no patch size, no embeddings yet
    assert "embeddings: none yet" in capsys.readouterr().out
    assert run("class", "add", "disc", "--threshold", "0.6") == 0
    assert run("class", "add", "tmp") == 0
    assert run("class", "rename", "tmp", "gone") == 0
    assert run("class", "delete", "gone") == 0
    out = capsys.readouterr().out
    assert "gone" not in out.splitlines()[-1] and out.splitlines()[-1].startswith("disc")
    saved = out.split("simsearch class restore ")[1].split(" brings")[0]  # the command says where it is kept
    assert run("class", "restore", saved) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[-2:]] == ["disc", "gone"]
    assert run("class", "restore", saved) == 2 and f"restore class: cannot read {saved}" in capsys.readouterr().err
    assert run("class", "delete", "gone") == 0
    capsys.readouterr()
    assert run("suggest", "disc") == 0  # nothing to suggest from yet: said, with the way on
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == "0 suggestion(s) in 0 image(s), 0 flagged"
    assert "note: class 'disc' has no prototype yet" in captured.err and "simsearch prototype add disc" in captured.err
    y, x = truth["img0.tif"][0][0]
    assert run("prototype", "add", "disc", "img0.tif", "--box=-5,-5,27,27") == 2  # a minus sign: parsed, refused by name
    assert "lies outside image img0.tif" in capsys.readouterr().err
    assert main(["-q", "prototype", "add", "--project", proj, "disc", "img0.tif", "--", "-5,-5,27,27"]) == 2
    assert "lies outside image img0.tif" in capsys.readouterr().err
    assert run("prototype", "add", "disc", "img0.tif", f"{x - 16},{y - 16},{x + 16},{y + 16}") == 0
    assert "added prototype 1 of disc" in capsys.readouterr().out
    assert run("suggest", "disc", "--threshold", "-1", "--save-threshold", "--csv", str(tmp_path / "s.csv")) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "no prototype" not in captured.err
    assert lines[-1].endswith("0 flagged") and len((tmp_path / "s.csv").read_text().splitlines()) > 9
    # between the 9th suggestion (the 9 discs of the 3 displayed images) and the 10th (a cross):
    # the discs of the undisplayed images score about as the displayed ones, some below the 9th
    threshold = (float(lines[9].split()[1]) + float(lines[10].split()[1])) / 2
    assert run("suggest", "disc", "--threshold", str(threshold), "--save-threshold") == 0
    assert "9 suggestion(s) in 3 image(s), 0 flagged" in capsys.readouterr().out
    assert run("flag", "disc", "9") == 0
    assert run("suggest", "disc") == 0
    assert "9 suggestion(s) in 3 image(s), 1 flagged" in capsys.readouterr().out
    assert run("flag", "disc", "99") == 2
    assert "no number(s) [99]" in capsys.readouterr().err
    assert run("confirm", "disc") == 0
    assert "8 clean positive(s)" in capsys.readouterr().out
    assert run("background", "propose", "--count", "3") == 0
    assert run("background", "flag", "1") == 0
    assert "NO " in capsys.readouterr().out
    assert run("background", "confirm") == 0
    assert "5 clean background patch(es)" in capsys.readouterr().out
    assert run("noisy", "--background-per-image", "2") == 0
    out = capsys.readouterr().out
    assert "disc             6 noisy patch(es)" in out  # 3 discs in each of 2 undisplayed images
    assert "background       8 noisy patch(es)" in out  # 2 high + 2 low per image
    assert run("similar", "disc", "-k", "3") == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
    with Project.open(proj, read_only=True) as project:
        assert len(project.store.patches("disc", "positive")) == 8
        assert len(project.store.patches("disc", "negative")) == 1


def test_csv_import_checks_every_line_first(tmp_path, capsys):
    folder, truth = _setup(tmp_path)
    proj = str(tmp_path / "proj")
    assert main(["-q", "create", str(folder), "--displayed", "3", "--project", proj, "--backbone", "efficientnet-lite0"]) == 0
    (y, x), (cy, cx) = truth["img1.tif"][0][0], truth["img1.tif"][1][0]
    good = f"prototype,disc,img1.tif,{x - 16},{y - 16},{x + 16},{y + 16}\nnegative,disc,img1.tif,{cx - 16},{cy - 16},{cx + 16},{cy + 16}\n"
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,class,image,x0,y0,x1,y1\n" + good + "prototype,disc,img1.tif,0,0,900,900\n")
    assert main(["-q", "import", str(bad), "--project", proj]) == 2
    assert "bad.csv line 4" in capsys.readouterr().err
    with Project.open(proj, read_only=True) as project:
        assert project.store.classes() == [] and project.geometry is None  # nothing stored
    ok = tmp_path / "ok.csv"
    ok.write_text("kind,class,image,x0,y0,x1,y1\n" + good)
    assert main(["-q", "import", str(ok), "--project", proj]) == 0
    assert "imported 1 prototype(s) and 1 negative(s)" in capsys.readouterr().out
    assert main(["-q", "import", str(ok), "--project", proj]) == 0  # again: nothing twice
    assert "imported 0 prototype(s) and 0 negative(s) from" in (out := capsys.readouterr().out)
    assert "(2 line(s) were there already)" in out
    with Project.open(proj, read_only=True) as project:
        assert len(project.store.prototypes("disc")) == 1 and len(project.store.patches("disc", "negative")) == 1
    from simsearch import Curation
    from simsearch.curation.importer import import_annotations

    moved = tmp_path / "moved.csv"  # the user edits the prototype's line: its box moves 8 px
    moved.write_text(f"kind,class,image,x0,y0,x1,y1\nprototype,disc,img1.tif,{x - 8},{y - 16},{x + 24},{y + 16}\n")
    with Project.open(proj) as project:
        assert import_annotations(project, Curation(project), ok)["not_in_file"] == 0
        counts = import_annotations(project, Curation(project), moved)
        assert (counts["prototype"], counts["not_in_file"]) == (1, 1)  # the old one stays, and is counted
        edge = tmp_path / "edge.csv"  # a small box at the corner: stored re-centred, found again
        edge.write_text("kind,class,image,x0,y0,x1,y1\nprototype,disc,img1.tif,0,0,10,10\n")
        assert import_annotations(project, Curation(project), edge)["prototype"] == 1
        counts = import_annotations(project, Curation(project), edge)
        assert (counts["prototype"], counts["already"], counts["not_in_file"]) == (0, 1, 2)
    (tmp_path / "header.csv").write_text("a,b\n1,2\n")
    assert main(["-q", "import", str(tmp_path / "header.csv"), "--project", proj]) == 2
    assert "header must be" in capsys.readouterr().err


def test_csv_files_are_utf8_and_of_the_header_s_width(tmp_path, capsys):
    """A non-UTF-8 file or a row with an extra field is an error naming the file and line, for
    imported prototypes and for ground truth alike; a byte-order mark is fine."""
    from simsearch import DatasetError, read_truth
    from simsearch.io.tables import read_csv_rows

    latin = tmp_path / "latin.csv"
    latin.write_bytes("image,class,x,y\na.tif,cell,1,2\nb.tif,c\xe9llule,3,4\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"latin.csv line 3: not UTF-8"):
        read_truth(latin)
    wide = tmp_path / "wide.csv"
    wide.write_text("image,class,x,y\na.tif,cell,1,2,extra\n")
    with pytest.raises(DatasetError, match=r"wide.csv line 2: expected 4 fields"):
        read_truth(wide)
    marked = tmp_path / "bom.csv"
    marked.write_bytes("\ufeffimage,class,x,y\n\na.tif,cell,1,2\n".encode("utf-8"))
    assert read_csv_rows(marked) == (["image", "class", "x", "y"], [(3, ["a.tif", "cell", "1", "2"])])
    folder, _ = _setup(tmp_path)
    proj = str(tmp_path / "proj")
    assert main(["-q", "create", str(folder), "--displayed", "2", "--project", proj, "--backbone", "efficientnet-lite0",
                 "--min-cells", "4"]) == 0
    with Project.open(proj, read_only=True) as project:
        assert project.embedding_options["min_cells"] == 4
    bad = tmp_path / "bad.csv"
    bad.write_bytes("kind,class,image,x0,y0,x1,y1\nprototype,c\xe9ll,img0.tif,1,1,20,20\n".encode("latin-1"))
    assert main(["-q", "import", str(bad), "--project", proj]) == 2
    assert "bad.csv line 2: not UTF-8" in capsys.readouterr().err
    bad.write_text("kind,class,image,x0,y0,x1,y1\nprototype,cell,img0.tif,1,1,20,20,7\n")
    assert main(["-q", "import", str(bad), "--project", proj]) == 2
    assert "bad.csv line 2: expected 7 fields" in capsys.readouterr().err
    with Project.open(proj, read_only=True) as project:
        assert project.store.prototypes() == []  # nothing stored


def test_a_project_made_by_embed_gets_its_displayed_images_from_the_command_line(tmp_path, capsys):
    """`embed` makes a project with no displayed images; `suggest` then names the command that
    chooses them, and `displayed` lists, draws or names them."""
    folder, truth = _setup(tmp_path)
    proj = str(tmp_path / "proj")
    run = lambda *args: main(["-q", *args, "--project", proj])  # noqa: E731
    assert main(["-q", "embed", str(folder), "--project", proj, "--patch-size", "32", "--backbone", "efficientnet-lite0"]) == 0
    assert run("class", "add", "disc") == 0
    y, x = truth["img0.tif"][0][0]
    assert run("prototype", "add", "disc", "img0.tif", f"{x - 16},{y - 16},{x + 16},{y + 16}") == 0
    capsys.readouterr()
    assert run("suggest", "disc") == 2
    assert "simsearch displayed N --project" in capsys.readouterr().err
    assert run("displayed") == 0
    assert capsys.readouterr().out.splitlines() == ["0 displayed, 5 undisplayed (noisy examples come from these)"]
    assert run("displayed", "2", "--images", "img1.tif") == 2
    assert "a count or --images, not both" in capsys.readouterr().err
    assert run("displayed", "--images", "img9.tif") == 2  # a name no image has: the close ones offered
    assert "no image 'img9.tif'" in (err := capsys.readouterr().err) and "did you mean 'img" in err
    assert run("displayed", "--images", "img0.tif", "img2.tif") == 0
    assert capsys.readouterr().out.splitlines() == [
        "note: prototypes, negatives and positives curated on other images are kept",
        "img0.tif", "img2.tif", "2 displayed, 3 undisplayed (noisy examples come from these)"]
    assert run("displayed", "3", "--seed", "1") == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert run("suggest", "disc") == 0
    with Project.open(proj, read_only=True) as project:
        assert len(project.displayed) == 3 and project.displayed_seed == 1


def test_listed_items_are_written_as_tiles_to_judge_by_looking(tmp_path, capsys):
    """suggest, background and review --tiles DIR write item N as DIR/N.png: its patch as the
    UI shows the image (the pixel at the tile's middle is the display image's at the item's
    centre), its box drawn; a shorter list removes the earlier list's extra tiles."""
    import numpy as np
    from PIL import Image
    from simsearch import display_rgb
    from simsearch.curation.tiles import TILE_COLOUR, TILE_SIDE

    folder, truth = _setup(tmp_path)
    proj = str(tmp_path / "proj")
    run = lambda *args: main(["-q", *args, "--project", proj])  # noqa: E731
    assert run("create", str(folder), "--displayed-images", "img0.tif", "img1.tif", "--backbone", "efficientnet-lite0") == 0
    assert run("class", "add", "disc") == 0
    y, x = truth["img0.tif"][0][0]
    assert run("prototype", "add", "disc", "img0.tif", f"{x - 16},{y - 16},{x + 16},{y + 16}") == 0
    capsys.readouterr()
    tiles = tmp_path / "tiles"
    assert run("suggest", "disc", "--threshold", "0", "--tiles", str(tiles)) == 0
    out = capsys.readouterr().out
    count = int(out.split(" suggestion(s)")[0].splitlines()[-1])
    assert f"tiles: {min(count, 500)} in {tiles}" in out and len(list(tiles.glob("*.png"))) == min(count, 500)
    with Project.open(proj, read_only=True) as project:
        first = Curation(project).suggestions("disc", 0.0)[0]
        shown = (display_rgb(project.dataset.read(first.image_id), project.normalization, project.channels) * 255).astype(np.uint8)
    tile = np.asarray(Image.open(tiles / "1.png"))
    assert tile.shape == (TILE_SIDE, TILE_SIDE, 3) and (tile == TILE_COLOUR).all(axis=-1).sum() > 100  # the box
    half = 32  # the patch (32 px) with half a patch around it on each side
    assert (tile[TILE_SIDE // 2, TILE_SIDE // 2] == shown[int(np.floor(first.y - half)) + half, int(np.floor(first.x - half)) + half]).all()
    assert run("suggest", "disc", "--threshold", "0.9", "--tiles", str(tiles)) == 0
    kept = int(capsys.readouterr().out.split(" suggestion(s)")[0].splitlines()[-1])
    assert kept < count and sorted(tiles.glob("*.png")) == sorted(tiles / f"{n}.png" for n in range(1, kept + 1))
    assert run("background", "propose", "--count", "3", "--tiles", str(tmp_path / "background")) == 0
    assert len(list((tmp_path / "background").glob("*.png"))) == 6  # the 3 most and 3 least similar
    assert run("similar", "disc", "-k", "3", "--tiles", str(tmp_path / "similar")) == 0
    assert sorted(p.name for p in (tmp_path / "similar").glob("*.png")) == ["1.png", "2.png", "3.png"]
    from simsearch.curation.tiles import write_tiles  # review items keep their batch's numbers
    with Project.open(proj, read_only=True) as project:
        two = Curation(project).suggestions("disc", 0.9)[:2]
        assert write_tiles(project, two, tmp_path / "review", numbers=[5, 9]) == [tmp_path / "review" / "5.png",
                                                                                   tmp_path / "review" / "9.png"]
