"""The measures of the explore kinds against direct computations: CKA's closed form, mutual k-NN by brute force,
mIoU from a hand-counted confusion matrix, PCA colours against numpy's SVD, a correspondence's peak."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddae_core.engine.data.builtin import SHAPES, generate_masks, generate_shapes
from ddae_core.engine.evaluation.lens import correspondence, pca_rgb, principal_components
from ddae_core.engine.evaluation.segmentation import confusion_matrix, mean_iou, shapes_with_masks
from ddae_core.engine.evaluation.similarity import best_match, cka_matrix, linear_cka, mutual_knn, mutual_knn_matrix


def _rows(seed: int, n: int = 40, p: int = 7) -> torch.Tensor:
    return torch.randn(n, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _feature_space_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s eq.: ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), columns centred."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_cka_of_a_representation_with_itself_is_one_and_ignores_rotation_and_scale():
    x = _rows(0)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    q, _ = torch.linalg.qr(_rows(1, 7, 7))             # an orthogonal 7 x 7 matrix
    assert linear_cka(x, 3.5 * x @ q) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, x + 10.0) == pytest.approx(1.0, abs=1e-12)   # a shift is centred away
    y = _rows(2, p=5)
    assert linear_cka(x, y) == pytest.approx(_feature_space_cka(x.numpy(), y.numpy()), abs=1e-12)
    assert linear_cka(x, y) < 0.5


def test_cka_by_hand_on_a_small_case():
    # Centred x = [-1.5, -0.5, 0.5, 1.5], y = [-1, -1, 1, 1]: y^T x = 4, x^T x = 5, y^T y = 4 -> 16 / 20.
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    y = torch.tensor([[0.0], [0.0], [2.0], [2.0]])
    assert linear_cka(x, y) == pytest.approx(0.8, abs=1e-12)


def test_cka_matrix_holds_each_pair_in_its_layers_order():
    feats_a = {"enc": _rows(3), "out": _rows(4, p=3)}
    feats_b = {"x": _rows(4, p=3), "y": _rows(5), "z": _rows(3) * 2}
    matrix = cka_matrix(feats_a, feats_b)
    assert matrix.shape == (2, 3)
    for r, x in enumerate(feats_a.values()):
        for c, y in enumerate(feats_b.values()):
            assert matrix[r, c] == pytest.approx(_feature_space_cka(x.numpy(), y.numpy()), abs=1e-12)
    result = {"layers_a": list(feats_a), "layers_b": list(feats_b), "cka": matrix.tolist()}
    assert best_match(result, "enc") == ("z", pytest.approx(1.0))
    assert best_match(result, "out") == ("x", pytest.approx(1.0))
    assert best_match(result, "mid") is None


def _brute_mutual_knn(x: np.ndarray, y: np.ndarray, k: int) -> float:
    def neighbours(z):
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        out = []
        for i in range(len(z)):
            similarity = [(float(z[i] @ z[j]), j) for j in range(len(z)) if j != i]
            out.append({j for _, j in sorted(similarity, reverse=True)[:k]})
        return out
    return float(np.mean([len(a & b) / k for a, b in zip(neighbours(x), neighbours(y))]))


def test_mutual_knn_against_brute_force():
    x, y = _rows(6, n=30), _rows(7, n=30, p=4)
    for k in (1, 3, 10):
        assert mutual_knn(x, y, k) == pytest.approx(_brute_mutual_knn(x.numpy(), y.numpy(), k), abs=1e-12)
    assert mutual_knn(x, 2 * x, 5) == pytest.approx(1.0)     # cosine neighbours ignore scale
    matrix = mutual_knn_matrix({"a": x, "b": y}, {"c": y}, k=3)
    assert matrix[:, 0] == pytest.approx([_brute_mutual_knn(x.numpy(), y.numpy(), 3), 1.0])


def test_miou_from_a_hand_counted_confusion_matrix():
    target = torch.tensor([[0, 0, 1], [1, 2, 2]])
    predicted = torch.tensor([[0, 1, 1], [1, 2, 0]])
    confusion = confusion_matrix(predicted, target, 4)
    assert confusion[:3, :3].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # IoU: class 0 1/(2+2-1), class 1 2/(2+3-2), class 2 1/(2+1-1); class 3 absent everywhere: left out.
    assert mean_iou(confusion) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert mean_iou(confusion_matrix(target, target, 4)) == 1.0


def test_shape_masks_mark_the_shape_with_its_class_and_follow_the_image_subset():
    images, labels = generate_shapes(40, 0, "test")
    masks = generate_masks(40, 0, "test")
    assert masks.shape == (40, 32, 32) and torch.equal(masks, generate_masks(40, 0, "test"))
    for mask, label in zip(masks, labels):
        assert set(mask.unique().tolist()) == {0, int(label) + 1}
        assert 30 < int((mask > 0).sum()) < 32 * 32 - 100
    # The shape differs from the background where the mask says so: the mean colour inside and outside differ.
    inside = masks[0] > 0
    assert (images[0].float()[:, inside].mean(1) - images[0].float()[:, ~inside].mean(1)).abs().max() > 20
    sub_images, sub_masks = shapes_with_masks("builtin:shapes?n_train=40&n_test=40", "test", 10, 32)
    assert len(sub_images) == 10 == len(sub_masks)
    for image, mask in zip(sub_images, sub_masks):
        i = next(i for i in range(40) if torch.equal(images[i], image))
        assert torch.equal(masks[i], mask)
    assert len(SHAPES) == 10


def test_pca_colours_first_component_matches_numpy_svd():
    fmap = torch.randn(6, 5, 4, generator=torch.Generator().manual_seed(8))
    pixels = fmap.reshape(6, 20).T.double().numpy()
    pixels = pixels - pixels.mean(0)
    _, _, vh = np.linalg.svd(pixels, full_matrices=False)
    first = pixels @ vh[0]
    ours = principal_components(fmap, 3)[0].reshape(-1).numpy()
    assert np.abs(ours) == pytest.approx(np.abs(first), abs=1e-9)
    assert ours == pytest.approx(first * np.sign(vh[0][np.argmax(np.abs(vh[0]))]), abs=1e-9)
    rgb = pca_rgb(fmap)
    assert rgb.shape == (5, 4, 3) and float(rgb.min()) == 0.0 and float(rgb.max()) == pytest.approx(1.0)
    red = rgb[..., 0].reshape(-1).numpy()
    signed = first * np.sign(vh[0][np.argmax(np.abs(vh[0]))])
    assert red == pytest.approx((signed - signed.min()) / (signed.max() - signed.min()), abs=1e-6)


def test_correspondence_of_an_image_with_itself_peaks_at_the_clicked_pixel():
    fmap = torch.randn(16, 8, 8, generator=torch.Generator().manual_seed(9))
    for y, x in ((0, 0), (13, 5), (31, 31)):
        heat = correspondence(fmap, fmap, y, x, 32)
        assert heat.shape == (32, 32)
        assert heat[y, x] == pytest.approx(1.0, abs=1e-5)
        assert tuple(np.unravel_index(int(heat.argmax()), heat.shape)) == (y, x) or heat.max() - heat[y, x] < 1e-6
    with pytest.raises(ValueError, match="outside"):
        correspondence(fmap, fmap, 32, 0, 32)


def test_shapes_for_a_larger_model_are_resized_with_their_masks():
    images, masks = shapes_with_masks("builtin:shapes?n_train=8&n_test=8", "train", None, 64)
    assert images.shape == (8, 3, 64, 64) and masks.shape == (8, 64, 64)
    small = generate_masks(8, 0, "train")
    assert torch.equal(masks[:, ::2, ::2], small)           # nearest: each pixel's class, doubled
