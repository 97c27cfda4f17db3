"""The k-NN protocol's classifier: cosine k nearest neighbours with temperature-weighted votes, as DINO evaluates.

Features are L2-normalised; a test row's k nearest training rows by cosine similarity s each vote for their class
with weight exp(s / T), and the class with the largest summed weight wins (the lowest class index on a tie).
Nothing is trained, so a grid cell costs one matrix product over features the probe already extracted: the
instant grid. Test rows go in batches, so memory stays (batch x training rows) whatever the test split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K, TEMPERATURE = 20, 0.07       # DINO's k-NN evaluation (k=20, T=0.07)
TEST_BATCH = 1024


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, *,
                num_classes: int, k: int = K, temperature: float = TEMPERATURE,
                batch_size: int = TEST_BATCH) -> torch.Tensor:
    """The predicted class of every test row, (N_test,) long, on the training features' device."""
    device = train_feats.device
    train = F.normalize(train_feats.float(), dim=1)
    labels = train_labels.to(device).long()
    k = min(k, len(train))
    predictions = []
    for start in range(0, len(test_feats), batch_size):
        test = F.normalize(test_feats[start:start + batch_size].to(device).float(), dim=1)
        similarity, index = (test @ train.T).topk(k, dim=1)
        scores = torch.zeros(len(test), num_classes, device=device)
        scores.scatter_add_(1, labels[index], (similarity / temperature).exp())
        predictions.append(scores.argmax(dim=1))
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long, device=device)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                 test_labels: torch.Tensor, k: int = K, temperature: float = TEMPERATURE, *, num_classes: int,
                 batch_size: int = TEST_BATCH) -> float:
    """The fraction of test rows whose k-NN vote (see the module) is their label."""
    if len(test_labels) == 0:
        return 0.0
    predicted = knn_predict(train_feats, train_labels, test_feats, num_classes=num_classes, k=k,
                            temperature=temperature, batch_size=batch_size)
    return (predicted.cpu() == test_labels.cpu().long()).float().mean().item()


def knn_grid_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor,
                      test_labels: torch.Tensor, *, num_classes: int, k: int = K, temperature: float = TEMPERATURE,
                      batch_size: int = 256) -> list[float]:
    """Every layer's k-NN accuracy at once: (L, N, C) training and (L, M, C) test features -> L fractions.

    Layers are zero-padded to one width C (padding adds nothing to a cosine), so a whole row of the grid is one
    batched matrix product per test batch; the vote is knn_predict's, cell for cell.
    """
    if test_feats.shape[1] == 0:
        return [0.0] * test_feats.shape[0]
    device = train_feats.device
    train = F.normalize(train_feats.float(), dim=2)
    labels = train_labels.to(device).long()
    k = min(k, train.shape[1])
    correct = torch.zeros(train.shape[0], dtype=torch.long, device=device)
    truth = test_labels.to(device).long()
    for start in range(0, test_feats.shape[1], batch_size):
        test = F.normalize(test_feats[:, start:start + batch_size].to(device).float(), dim=2)
        similarity, index = torch.bmm(test, train.transpose(1, 2)).topk(k, dim=2)
        scores = torch.zeros(*test.shape[:2], num_classes, device=device)
        scores.scatter_add_(2, labels[index], (similarity / temperature).exp())
        correct += (scores.argmax(dim=2) == truth[None, start:start + test.shape[1]]).sum(1)
    return (correct.float() / test_feats.shape[1]).tolist()
