"""Reusable plot widgets: CurvePlot (curves.py), GridHeatmap (heatmap.py), SampleViewer (samples.py),
AlignUniformPlot (align_uniform.py); shared export helpers in export.py."""
