"""generate.py: grids, files per image, lanes and stores, ensembles, completion, and the rules
of what it writes (decided before generating, never over anything but a regular PNG)."""
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

import generate
from conftest import (EARLIER, LATEST, ROOT, assert_one_error_line, describe, error_of,
                      flag_error, limit_file_size, png_pixels, run_main, run_script, snapshot,
                      tf, write_file)


def tiles(grid, count, size=8, padding=1):
    """The first `count` images of a grid of size x size images, row by row."""
    step = size + padding
    columns = (grid.shape[1] + padding) // step
    return [grid[index // columns * step:index // columns * step + size,
                 index % columns * step:index % columns * step + size]
            for index in range(count)]


def generate_grid(checkpoints, out, capsys, *flags):
    """Runs generate.main; returns (its stdout, the pixels of `out`)."""
    printed = run_main(generate, ['--checkpoint=%s' % path for path in checkpoints]
                       + ['--out=%s' % out] + list(flags), capsys).stdout
    return printed, png_pixels(out)[0]


def argmax_completions(checkpoints, data_dir, out, capsys, *flags):
    """Completes a dark and a bright image from their first 3 rows with --argmax; each row of
    the grid: the image, its kept rows and 3 completions."""
    seeds = [data_dir / 'dark' / 'dark_00.png', data_dir / 'bright' / 'bright_00.png']
    printed, grid = generate_grid(checkpoints, out, capsys, '--argmax', '--seed_rows=3',
                                  '--num_images=3', *['--seed_image=%s' % seed for seed in seeds],
                                  *flags)
    assert grid.shape == (2 * 8 + 1, 5 * 8 + 4)
    images = tiles(grid, 10)
    # The likeliest pixels depend on the pixels before them: dark stays dark, bright bright.
    assert max(image[3:].mean() for image in images[2:5]) < 100, grid
    assert min(image[3:].mean() for image in images[7:10]) > 150, grid
    return printed, images


def test_the_script_prints_its_own_lines_and_a_seed_repeats_its_image(trained, tmp_path,
                                                                      capsys):
    out = tmp_path / 'missing' / 'nested' / 'one.png'
    result = run_script('generate.py', '--checkpoint=%s' % trained.logdir, '--out=%s' % out,
                        '--num_images=1', '--seed=7')
    assert result.returncode == 0, describe(result)
    assert result.stdout.splitlines() == [
        'generating 1 image of 8x8 from %s with moving averages (fast generation, temperature '
        '1, seed 7)' % (trained.logdir / LATEST), 'wrote %s' % out], describe(result)
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(
        'generating: 64 pixels'), describe(result)
    assert png_pixels(out)[0].shape == (8, 8)
    for path, seed in ((tmp_path / 'again.png', 7), (tmp_path / 'other.png', 8)):
        run_main(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % path,
                            '--num_images=1', '--seed=%d' % seed], capsys)
    assert (tmp_path / 'again.png').read_bytes() == out.read_bytes()
    assert (tmp_path / 'other.png').read_bytes() != out.read_bytes()


def test_a_grid_of_distinct_images(trained, tmp_path, capsys):
    _, grid = generate_grid([trained.logdir], tmp_path / 'grid.png', capsys, '--num_images=4',
                            '--seed=1')
    assert grid.shape == (2 * 8 + 1, 2 * 8 + 1)
    assert not grid[8].any() and not grid[:, 8].any()
    assert len({image.tobytes() for image in tiles(grid, 4)}) == 4


@pytest.mark.parametrize('state', ['ring', 'queues'])
def test_lanes_and_stores_complete_as_naive_generation(trained, data_dir, tmp_path, capsys,
                                                       state):
    """6 images in batches of 4 (the last one padded), each batch in 2 lanes: with --argmax
    the same images as naive generation."""
    _, naive = argmax_completions([trained.logdir], data_dir, tmp_path / 'naive.png', capsys,
                                  '--fast_generation=false')
    out, fast = argmax_completions([trained.logdir], data_dir, tmp_path / 'fast.png', capsys,
                                   '--batch_size=4', '--lanes=2', '--generation_state=' + state)
    assert '(fast generation' in out, out
    np.testing.assert_array_equal(fast, naive)


def test_out_dir_from_a_checkpoint_prefix_holds_the_grid_images(trained, tmp_path, capsys):
    checkpoint = trained.logdir / EARLIER
    folder = tmp_path / 'images'
    out = run_main(generate, ['--checkpoint=%s' % checkpoint, '--out_dir=%s' % folder,
                              '--num_images=3', '--seed=2'], capsys).stdout
    assert 'from %s with moving averages (' % checkpoint in out, out
    assert out.splitlines()[-1] == 'wrote %s' % folder
    assert sorted(os.listdir(folder)) == ['image_0000.png', 'image_0001.png', 'image_0002.png']
    _, grid = generate_grid([checkpoint], tmp_path / 'grid.png', capsys, '--num_images=3',
                            '--seed=2')
    for index, image in enumerate(tiles(grid, 3)):
        np.testing.assert_array_equal(png_pixels(folder / ('image_%04d.png' % index))[0], image)
    before = snapshot(folder)
    message = error_of(generate, ['--checkpoint=%s' % checkpoint, '--out_dir=%s' % folder,
                                  '--num_images=4'])
    assert '%s exists (and 2 more' % (folder / 'image_0000.png') in message, message
    assert 'add --overwrite' in message and snapshot(folder) == before
    run_main(generate, ['--checkpoint=%s' % checkpoint, '--out_dir=%s' % folder,
                        '--num_images=4', '--overwrite', '--seed=3'])
    assert len(os.listdir(folder)) == 4 and snapshot(folder) != before


def test_an_ensemble_of_a_model_with_itself_generates_as_the_model(trained, data_dir, tmp_path,
                                                                    capsys):
    members = [trained.logdir, trained.logdir / EARLIER]
    out, grid = generate_grid(members, tmp_path / 'pair.png', capsys, '--num_images=2',
                              '--seed=4')
    assert 'from the ensemble of %s, %s with moving averages (' % (members[0] / LATEST,
                                                                  members[1]) in out, out
    assert grid.shape == (8, 17)
    _, alone = argmax_completions(members[:1], data_dir, tmp_path / 'alone.png', capsys)
    _, itself = argmax_completions(members[:1] * 2, data_dir, tmp_path / 'itself.png', capsys)
    np.testing.assert_array_equal(itself, alone)


def test_a_logdir_without_run_json_generates_from_the_checkpoints_record(logdir_copy,
                                                                        tmp_path):
    (logdir_copy / 'run.json').unlink()
    run_main(generate, ['--checkpoint=%s' % logdir_copy, '--out=%s' % (tmp_path / 'a.png'),
                        '--num_images=1'])
    assert png_pixels(tmp_path / 'a.png')[0].shape == (8, 8)


@pytest.mark.parametrize('flag', ['--temperature=0', '--temperature=nan', '--lanes=0',
                                  '--num_images=0', '--num_images=1000000000000',
                                  '--generation_state=arrays', '--fast_generation=maybe',
                                  '--seed_rows=3', '--seed=-5', '--batch_size=100000',
                                  '--out=', '--out_dir='])
def test_bad_flag_values_are_one_line_naming_the_flag(flag, capsys):
    assert flag.split('=')[0] in flag_error(generate, ['--out=x.png', flag], capsys)


def test_a_folder_without_checkpoint_is_one_line_through_the_script(tmp_path):
    empty = tmp_path / 'no_checkpoint'
    empty.mkdir()
    result = run_script('generate.py', '--checkpoint=%s' % empty,
                        '--out=%s' % (tmp_path / 'never.png'))
    assert result.returncode == 2 and result.stdout == '', describe(result)
    assert result.stderr.splitlines() == [
        'error: no checkpoint in %s: train a model into it first' % empty], describe(result)
    assert os.listdir(tmp_path) == ['no_checkpoint'] and os.listdir(empty) == []


def test_too_many_images_or_columns_are_refused_before_generating(trained, tmp_path):
    out = '--out=%s' % (tmp_path / 'grid.png')
    message = error_of(generate, ['--checkpoint=%s' % trained.logdir, out, '--num_images=4',
                                  '--columns=5'])
    assert '--columns=5 is more than the 4 images' in message
    write_file(tmp_path / 'seed.png', open(trained.logdir / 'samples' / 'samples-30.png',
                                           'rb').read())
    message = error_of(generate, ['--checkpoint=%s' % trained.logdir, out,
                                  '--num_images=60000', '--seed_image=%s' % (tmp_path / 'seed.png'),
                                  '--seed_image=%s' % (tmp_path / 'seed.png')])
    assert '120000 images asked for' in message
    assert os.listdir(tmp_path) == ['seed.png']


def test_nan_weights_are_one_clear_error(logdir_copy, tmp_path):
    checkpoint = str(logdir_copy / LATEST)
    with tf.Graph().as_default():
        reader = tf.train.load_checkpoint(checkpoint)
        variables = [tf.Variable(reader.get_tensor(name), name=name)
                     for name in reader.get_variable_to_shape_map()]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            biases = next(v for v in variables if v.op.name == 'wavenet/output/logits_biases')
            session.run(biases.assign(tf.fill(tf.shape(biases), float('nan'))))
            tf.train.Saver(variables).save(session, str(logdir_copy / 'model.ckpt-99'),
                                           write_meta_graph=False)
    message = error_of(generate, ['--checkpoint=%s' % logdir_copy, '--no_ema',
                                  '--out=%s' % (tmp_path / 'out.png'), '--num_images=2'])
    assert 'non-finite probabilities' in message and '\n' not in message, message
    assert not (tmp_path / 'out.png').exists()


# ------------------------------------------------------------------ what generate.py writes


@pytest.mark.parametrize('target', ['checkpoint_index', 'run_json', 'lock', 'no_suffix'])
def test_out_must_name_a_png_file(trained, logdir_copy, target):
    path = {'checkpoint_index': logdir_copy / (LATEST + '.index'),
            'run_json': logdir_copy / 'run.json', 'lock': logdir_copy / 'train.lock',
            'no_suffix': logdir_copy / 'samples' / 'grid'}[target]
    before = snapshot(logdir_copy)
    message = error_of(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % path])
    assert 'is not a PNG file name' in message and str(path) in message, message
    assert snapshot(logdir_copy) == before


@pytest.mark.parametrize('kind', ['symlink', 'device', 'text', 'folder'])
def test_an_existing_file_that_is_not_a_regular_png_is_never_written_over(trained, tmp_path,
                                                                          kind):
    out = tmp_path / 'out.png'
    if kind == 'symlink':
        write_file(tmp_path / 'victim.png', b'\x89PNG\r\n\x1a\nold')
        os.symlink(tmp_path / 'victim.png', out)
    elif kind == 'device':
        os.symlink('/dev/null', out)
    elif kind == 'text':
        write_file(out, 'my notes')
    else:
        out.mkdir()
    before = snapshot(tmp_path)
    message = error_of(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % out])
    assert str(out) in message and ('not a regular PNG file' in message or 'folder' in message)
    assert snapshot(tmp_path) == before


def test_a_png_is_replaced_atomically_keeping_its_mode(trained, tmp_path):
    out = tmp_path / 'out.png'
    run_main(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % out, '--seed=1',
                        '--num_images=1'])
    os.chmod(out, 0o600)
    old = out.read_bytes()
    run_main(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % out, '--seed=2',
                        '--num_images=1'])
    assert out.read_bytes() != old and stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert os.listdir(tmp_path) == ['out.png']


def test_save_every_writes_partial_grids_beside_the_output_only(trained, tmp_path,
                                                               monkeypatch):
    from wavenet import image_grid
    out, old = tmp_path / 'grid.png', b'\x89PNG\r\n\x1a\nthe old grid'
    write_file(out, old)
    written, save_png = [], image_grid.save_png

    def recording(path, image):
        written.append((os.path.basename(path), out.read_bytes()))
        save_png(path, image)
    monkeypatch.setattr(image_grid, 'save_png', recording)
    run_main(generate, ['--checkpoint=%s' % trained.logdir, '--out=%s' % out,
                        '--num_images=2', '--save_every=16', '--seed=1'])
    # At pixels 16, 32 and 48 of 64, the grid so far beside --out, which is written once.
    assert [name for name, _ in written] == ['grid.partial.png'] * 3 + ['grid.png']
    assert all(content == old for _, content in written)
    assert os.listdir(tmp_path) == ['grid.png'] and png_pixels(out)[0].shape == (8, 17)


def test_a_file_of_the_partial_grid_s_name_or_two_conditions_of_one_name_are_refused(
        trained, tmp_path):
    write_file(tmp_path / 'grid.partial.png', b'\x89PNG\r\n\x1a\nmine')
    message = error_of(generate, ['--checkpoint=%s' % trained.logdir, '--save_every=8',
                                  '--out=%s' % (tmp_path / 'grid.png')])
    assert '%s exists' % (tmp_path / 'grid.partial.png') in message, message
    assert sorted(os.listdir(tmp_path)) == ['grid.partial.png']


def test_save_every_on_a_full_disk_is_one_line_and_keeps_the_old_output(trained, tmp_path):
    out = tmp_path / 'grid.png'
    write_file(out, b'\x89PNG\r\n\x1a\n' + bytes(60))
    result = run_script('generate.py', '--checkpoint=%s' % trained.logdir, '--out=%s' % out,
                        '--num_images=4', '--save_every=8', preexec_fn=limit_file_size(100))
    assert_one_error_line(result, 'cannot write %s' % (tmp_path / 'grid.partial.png'),
                          'File too large')
    assert sorted(os.listdir(tmp_path)) == ['grid.png']
    assert out.read_bytes() == b'\x89PNG\r\n\x1a\n' + bytes(60)


def test_an_interrupted_save_every_keeps_the_old_output(trained, tmp_path):
    out = tmp_path / 'grid.png'
    write_file(out, b'\x89PNG\r\n\x1a\nthe old grid')
    process = subprocess.Popen(
        [sys.executable, 'generate.py', '--checkpoint=%s' % trained.logdir, '--out=%s' % out,
         '--num_images=64', '--batch_size=1', '--fast_generation=false', '--save_every=1'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not (tmp_path / 'grid.partial.png').exists():
        assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, errors
    assert errors.splitlines()[-1] == 'error: interrupted (SIGTERM)', errors
    assert sorted(os.listdir(tmp_path)) == ['grid.png']
    assert out.read_bytes() == b'\x89PNG\r\n\x1a\nthe old grid'


@pytest.mark.parametrize('out', ['new_folder/', ''])
def test_outputs_that_cannot_be_png_files_fail_before_generating(trained, tmp_path, out,
                                                                 capsys):
    if out:
        message = error_of(generate, ['--checkpoint=%s' % trained.logdir,
                                      '--out=%s' % (tmp_path / out)])
        assert 'is not a PNG file name' in message, message
    else:
        flag_error(generate, ['--out='], capsys)
    assert os.listdir(tmp_path) == []


def test_generate_on_a_full_disk_is_one_line_and_leaves_no_temporary(trained, tmp_path):
    out = tmp_path / 'grid.png'
    result = run_script('generate.py', '--checkpoint=%s' % trained.logdir, '--out=%s' % out,
                        '--num_images=4', preexec_fn=limit_file_size(20))
    assert_one_error_line(result, 'cannot write %s' % out, 'File too large')
    assert os.listdir(tmp_path) == []
