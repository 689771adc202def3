using System.Globalization;
using Dnm.Core.Som;
using SkiaSharp;

namespace Dnm.Core.Visual;

public static partial class MapRenderer
{
    internal const int ColourBarWidth = 20;

    /// <summary>
    /// The U-matrix: for each node, the mean Euclidean distance from its prototype to the prototypes of its lattice
    /// neighbours (<see cref="MapGrid.Neighbours"/>: 4 on a rect lattice, 6 on a hex one, fewer at the edges of a flat map,
    /// the wrapped ones on a torus, each distinct neighbour once). High values mark borders between clusters. A 1×1
    /// lattice has no neighbours and gets 0.
    /// </summary>
    public static float[] UMatrix(ReadOnlySpan<float> w, MapGrid grid, int dim)
    {
        ArgumentNullException.ThrowIfNull(grid);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dim);
        if (w.Length != grid.Nodes * dim)
            throw new ArgumentException($"Expected {grid.Nodes} prototypes of {dim} floats, got {w.Length} floats.", nameof(w));

        var u = new float[grid.Nodes];
        for (var node = 0; node < u.Length; node++)
        {
            var neighbours = grid.Neighbours(node);
            double sum = 0;
            foreach (var n in neighbours)
                sum += Distance(w.Slice(node * dim, dim), w.Slice(n * dim, dim));
            u[node] = neighbours.Length == 0 ? 0f : (float)(sum / neighbours.Length);
        }
        return u;
    }

    /// <summary>
    /// Draws the <see cref="UMatrix"/> with the viridis colormap (dark purple = close neighbours,
    /// yellow = far apart, i.e. cluster borders), scaled from its minimum to its maximum, with a colour
    /// bar labelled with both values on the right.
    /// </summary>
    public static void RenderUMatrix(string path, ReadOnlySpan<float> w, MapGrid grid, int dim)
    {
        using var text = TextPainter.Create(TextSize);
        RenderUMatrix(path, w, grid, dim, text);
    }

    internal static void RenderUMatrix(string path, ReadOnlySpan<float> w, MapGrid grid, int dim, ITextPainter text) =>
        RenderHeatMap(path, UMatrix(w, grid, dim), grid, text, cellText: null);

    /// <summary>
    /// One value per node in viridis, scaled from the values' minimum to their maximum (a flat map in the middle colour),
    /// with a colour bar labelled with both on the right. <paramref name="cellText"/>, when given, writes a short text
    /// into each node whose square is wide enough for it.
    /// </summary>
    private static void RenderHeatMap(string path, float[] values, MapGrid grid, ITextPainter text, Func<int, string>? cellText,
        float? minimum = null)
    {
        float min = minimum ?? values.Min(), max = values.Max();
        double Normalise(float v) => max > min ? (v - min) / (double)(max - min) : 0.5;

        var cell = CellSize(grid.Cols);
        int mapWidth = LatticeWidth(grid, cell), mapHeight = grid.Rows * cell;
        var barHeight = Math.Max(mapHeight, 120);
        var barLeft = Margin + mapWidth + 2 * Margin;
        string maxText = max.ToString("G4", CultureInfo.InvariantCulture), minText = min.ToString("G4", CultureInfo.InvariantCulture);
        var width = (int)MathF.Ceiling(barLeft + ColourBarWidth + 6 + Math.Max(text.Measure(maxText), text.Measure(minText)) + Margin);
        var height = 2 * Margin + barHeight;

        using var bitmap = PngFile.White(width, height);
        using (var canvas = new SKCanvas(bitmap))
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false })
        using (var outline = new SKPaint { Style = SKPaintStyle.Stroke, IsAntialias = false, Color = SKColors.DimGray, StrokeWidth = 1 })
        {
            for (var node = 0; node < values.Length; node++)
            {
                var t = Normalise(values[node]);
                fill.Color = Palettes.Viridis(t);
                int left = Margin + CellLeft(grid, node, cell), top = Margin + grid.Row(node) * cell;
                // No gaps here: a heat map reads as a continuous landscape.
                canvas.DrawRect(left, top, cell, cell, fill);
                if (cellText?.Invoke(node) is { Length: > 0 } label && text.Measure(label) <= cell - 2 && text.LineHeight <= cell - 2)
                {
                    // Dark text on the light (yellow-green) half of viridis, white on the dark half.
                    var colour = t > 0.6 ? SKColors.Black : SKColors.White;
                    text.Draw(canvas, label, left + (cell - text.Measure(label)) / 2, top + (cell - text.LineHeight) / 2, colour);
                }
            }

            // Colour bar, maximum at the top, one row of pixels per colour step.
            for (var y = 0; y < barHeight; y++)
            {
                fill.Color = Palettes.Viridis(1.0 - y / (double)(barHeight - 1));
                canvas.DrawRect(barLeft, Margin + y, ColourBarWidth, 1, fill);
            }
            canvas.DrawRect(barLeft, Margin, ColourBarWidth - 1, barHeight - 1, outline);
            var labelLeft = barLeft + ColourBarWidth + 6;
            text.Draw(canvas, maxText, labelLeft, Margin, SKColors.Black);
            text.Draw(canvas, minText, labelLeft, Margin + barHeight - text.LineHeight, SKColors.Black);
        }
        PngFile.Save(bitmap, path);
    }

    private static double Distance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (var k = 0; k < a.Length; k++)
        {
            double d = a[k] - b[k];
            sum += d * d;
        }
        return Math.Sqrt(sum);
    }
}
