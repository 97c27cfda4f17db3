"""Reusable widgets: CurvePlot (curves.py), GridHeatmap (heatmap.py), SampleViewer (samples.py),
AlignUniformPlot (align_uniform.py), ProbabilityBars (bars.py), NoiseSlider (noise_slider.py);
shared export helpers in export.py, smoothing in smoothing.py."""
