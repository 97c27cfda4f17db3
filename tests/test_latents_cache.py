"""The latent cache: built once per VAE and data, shared by every probe, resumable after a kill or a full disk,
and read back as the official linear.py reads its latent codes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ddae_core.engine.data import load_split
from ddae_core.engine.errors import UserError
from ddae_core.engine.latents import LatentReader, build_latent_cache, list_latent_caches, load_vae
from ddae_core.engine.latents.build import chunk_generator, encode_chunk
from ddae_core.engine.latents.preprocess import eval_view
from tests.fixtures import ROOT
from tests.latents_support import save_tiny_vae

DATA = "builtin:shapes?n_train=24&n_test=10"
RESOLUTION = 64         # 4x8x8 latents through the tiny VAE, as the tiny DiT's


@pytest.fixture
def vae(tmp_path):
    return load_vae(save_tiny_vae(tmp_path / "vae"))


@pytest.fixture
def splits(workspace):
    data_root = workspace / "data"
    return load_split(DATA, "train", data_root=data_root), load_split(DATA, "test", data_root=data_root)


class CountingVAE:
    """The VAE, counting its encode calls (a real encoder underneath)."""

    def __init__(self, vae):
        self.vae, self.calls = vae, 0

    def __getattr__(self, name):
        return getattr(self.vae, name)

    def encode(self, *args, **kwargs):
        self.calls += 1
        return self.vae.encode(*args, **kwargs)


def build(vae, splits, data_root, **kwargs):
    kwargs = {"copies": 3, "resolution": RESOLUTION, "chunk_images": 8, **kwargs}
    return build_latent_cache(vae, *splits, data_root=data_root, **kwargs)


def test_cache_holds_k_augmented_copies_and_the_test_copy_as_fp16(vae, splits, workspace):
    train, test = splits
    cache = build(vae, splits, workspace / "data")
    assert cache.folder.parent == workspace / "data" / "latents"
    assert cache.train_codes.shape == (3, 24, 4, 8, 8) and cache.train_codes.dtype == np.float16
    assert cache.test_codes.shape == (10, 4, 8, 8) and cache.test_codes.dtype == np.float16
    assert isinstance(cache.train_codes, np.memmap) and not cache.train_codes.flags.writeable
    assert torch.equal(cache.train_labels, train.labels) and torch.equal(cache.test_labels, test.labels)
    assert cache.classes == train.classes
    assert cache.size_bytes >= (3 * 24 + 10) * 4 * 8 * 8 * 2
    # The copies are different augmentations of the same images.
    assert not np.array_equal(cache.train_codes[0], cache.train_codes[1])

    # The test copy is the official un-augmented view, encoded with its chunk's seed (one chunk: 8 images).
    expected = vae.encode(eval_view(test.images[:8], resolution=RESOLUTION),
                          generator=chunk_generator(0, "test", 0, 0))
    np.testing.assert_allclose(cache.test_codes[:8].astype(np.float32), expected.numpy(), atol=2e-3, rtol=1e-3)
    # Copy 0 of the training split is what encode_chunk gives the same images with the same seed.
    again = encode_chunk(vae, train.images[8:16], augment=True, resolution=RESOLUTION,
                         generator=chunk_generator(0, "train", 0, 8), batch_size=3)
    np.testing.assert_array_equal(cache.train_codes[0, 8:16], again.numpy().astype(np.float16))


def test_a_second_probe_opens_the_cache_without_encoding(vae, splits, workspace):
    counting = CountingVAE(vae)
    first = build(counting, splits, workspace / "data")
    assert counting.calls > 0
    counting.calls = 0
    second = build(counting, splits, workspace / "data")
    assert counting.calls == 0 and second.folder == first.folder
    np.testing.assert_array_equal(second.train_codes, first.train_codes)
    # Another number of copies, another seed or another VAE is another cache.
    assert build(vae, splits, workspace / "data", copies=2).folder != first.folder
    other_vae = load_vae(save_tiny_vae(workspace / "vae2", seed=1))
    assert build(other_vae, splits, workspace / "data").folder != first.folder
    assert len(list_latent_caches(workspace / "data")) == 3


def test_an_interrupted_build_resumes_where_it_stopped_and_equals_an_uninterrupted_one(vae, splits, workspace,
                                                                                       tmp_path):
    reference = build(vae, splits, tmp_path / "other-data")
    seen = []

    def killed_after_three_chunks(done, total):
        seen.append((done, total))
        if len(seen) == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        build(vae, splits, workspace / "data", progress=killed_after_three_chunks)
    assert seen == [(8, 82), (16, 82), (24, 82)]
    [partial] = list_latent_caches(workspace / "data")
    assert (partial.done, partial.total, partial.complete) == (24, 82, False)

    # A chunk written but not counted (killed between the two) is written again, not trusted.
    counting = CountingVAE(vae)
    resumed_at = []
    cache = build(counting, splits, workspace / "data", batch_size=5,
                  progress=lambda done, total: resumed_at.append(done))
    assert resumed_at[0] == 32 and resumed_at[-1] == 82
    assert counting.calls == sum(-(-(stop - start) // 5) for start, stop in
                                 [(0, 8), (8, 16), (16, 24)] * 2 + [(0, 8), (8, 10)])
    np.testing.assert_array_equal(cache.train_codes, reference.train_codes)
    np.testing.assert_array_equal(cache.test_codes, reference.test_codes)
    assert list_latent_caches(workspace / "data")[0].complete


def test_the_build_reports_progress_and_stops_when_asked(vae, splits, workspace, tmp_path):
    from ddae_core.engine.evaluation.features import Stopped
    from ddae_core.engine.reporting import Reporter

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    events = []
    reporter = Reporter(run_dir, echo=events.append)
    build(vae, splits, workspace / "data", reporter=reporter)
    progress = [(e["done"], e["total"], e["stage"]) for e in events if e["type"] == "progress"]
    assert progress[0] == (0, 82, "latent cache") and progress[-1] == (82, 82, "latent cache")

    reporter.request_stop()
    with pytest.raises(Stopped):
        build(vae, splits, workspace / "data", copies=2, reporter=reporter)
    reporter.close()


def test_another_jobs_build_is_refused_or_waited_for(vae, splits, workspace, tmp_path):
    from ddae_core.engine.reporting import Reporter

    with pytest.raises(KeyboardInterrupt):
        build(vae, splits, workspace / "data", progress=lambda done, total: (_ for _ in ()).throw(KeyboardInterrupt))
    [partial] = list_latent_caches(workspace / "data")
    # Another job holding the build's lock: it lets go 3 s after the test says so on its stdin.
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ddae_core.rundir import ProcessLock
        lock = ProcessLock({str(partial.folder / 'build.lock')!r})
        assert lock.acquire()
        print("held", flush=True)
        sys.stdin.readline()
        time.sleep(3)
    """)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"is being built by pid {holder.pid} on .*; wait for it to finish"):
            build(vae, splits, workspace / "data", wait=False)

        holder.stdin.write("go\n")
        holder.stdin.flush()
        (tmp_path / "run").mkdir()
        events = []
        reporter = Reporter(tmp_path / "run", echo=events.append)
        cache = build(vae, splits, workspace / "data", reporter=reporter)
        reporter.close()
        assert holder.poll() is not None                        # it waited for the holder to finish
        stages = [e["stage"] for e in events if e["type"] == "progress"]
        assert stages[0] == f"waiting for pid {holder.pid} on {stages[0].split(' on ')[1]}"
        assert stages[0].endswith("to build the latent cache") and stages[-1] == "latent cache"
        assert cache.train_codes.shape == (3, 24, 4, 8, 8)
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_stops_with_one_sentence_and_the_build_resumes(vae, splits, workspace, tmp_path):
    # A file size limit makes the arrays' writes fail as a full disk does (EFBIG here, ENOSPC there).
    script = textwrap.dedent(f"""
        import resource, signal
        from ddae_core.engine.data import load_split
        from ddae_core.engine.errors import UserError
        from ddae_core.engine.latents import build_latent_cache, load_vae
        vae = load_vae({str(tmp_path / 'vae')!r})
        splits = [load_split({DATA!r}, split, data_root={str(workspace / 'data')!r}) for split in ("train", "test")]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 + 20 * 512, resource.RLIM_INFINITY))
        try:
            build_latent_cache(vae, *splits, data_root={str(workspace / 'data')!r}, copies=3, resolution=64,
                               chunk_images=8)
        except UserError as exc:
            print(exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith("The latent cache in ") and "cannot be written" in message
    assert "it continues where it stopped" in message and "\n" not in message
    [partial] = list_latent_caches(workspace / "data")
    assert (partial.done, partial.complete) == (16, False)          # two chunks of 8 images fitted

    cache = build(vae, splits, workspace / "data")
    reference = build(vae, splits, tmp_path / "other-data")
    np.testing.assert_array_equal(cache.train_codes, reference.train_codes)


def test_a_folder_that_cannot_be_written_is_one_sentence(vae, splits, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data folder should be")
    with pytest.raises(UserError, match="cannot be written .*then build it again") as caught:
        build(vae, splits, blocked)
    assert "\n" not in str(caught.value)


def test_the_reader_draws_a_random_copy_per_item_and_reads_the_test_copy_in_order(vae, splits, workspace):
    cache = build(vae, splits, workspace / "data")
    reader = LatentReader(cache, batch_size=10, seed=3)
    assert reader.steps_per_epoch == 3
    latents, labels = reader.train_batch(0)
    assert latents.dtype == torch.float32 and latents.shape == (10, 4, 8, 8) and labels.dtype == torch.int64
    index = reader.sampler.batch(0).numpy()
    assert torch.equal(labels, cache.train_labels[index])
    copies_used = set()
    for item, i in enumerate(index):
        matches = [k for k in range(3) if np.array_equal(latents[item].numpy(), cache.train_codes[k, i])]
        assert matches
        copies_used.add(matches[0])
    assert len(copies_used) > 1
    again, _ = reader.train_batch(0)
    assert torch.equal(again, latents)                          # seeded: a resumed probe reads the same batch
    assert sum(len(y) for _, y in reader.train_epoch(1)) == 24

    test = list(reader.test_batches(batch_size=4))
    assert [len(y) for _, y in test] == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in test]), torch.from_numpy(cache.test_codes.astype(np.float32)))


def test_a_damaged_complete_cache_is_built_again(vae, splits, workspace):
    first = build(vae, splits, workspace / "data")
    expected, codes = np.array(first.test_codes), first.folder / "test_codes.npy"
    del first                                   # its memory map, before the file shrinks under it
    with open(codes, "r+b") as fh:
        fh.truncate(200)
    again = build(vae, splits, workspace / "data")
    np.testing.assert_array_equal(again.test_codes, expected)


def test_requests_the_cache_cannot_hold_are_one_sentence(vae, splits, workspace):
    with pytest.raises(UserError, match="multiple of 8 pixels"):
        build(vae, splits, workspace / "data", resolution=60)
    with pytest.raises(UserError, match="copies must be a whole number"):
        build(vae, splits, workspace / "data", copies=0)
    assert not (workspace / "data" / "latents").exists()
