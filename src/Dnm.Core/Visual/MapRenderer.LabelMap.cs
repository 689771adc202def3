using System.Globalization;
using Dnm.Core.Som;
using SkiaSharp;

namespace Dnm.Core.Visual;

public static partial class MapRenderer
{
    internal const int Margin = 12;
    internal const float TextSize = 14f;

    /// <summary>
    /// Draws each node as a square in the colour of its majority label (<see cref="Palettes.ForLabel"/>;
    /// grey for -1, a node with no samples), with a legend of colour swatches and class names on the right.
    /// A label without a name in <paramref name="classNames"/> is listed by its number.
    /// </summary>
    public static void RenderLabelMap(string path, ReadOnlySpan<int> labelMap, MapGrid grid, IReadOnlyList<string> classNames)
    {
        using var text = TextPainter.Create(TextSize);
        RenderLabelMap(path, labelMap, grid, classNames, text);
    }

    /// <summary>As the public overload, with the text painter chosen by the caller (tests force the pixel font).</summary>
    internal static void RenderLabelMap(string path, ReadOnlySpan<int> labelMap, MapGrid grid, IReadOnlyList<string> classNames, ITextPainter text)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        RequireLattice(labelMap.Length, grid, nameof(labelMap));

        var entries = LegendEntries(labelMap, classNames);
        var cell = CellSize(grid.Cols);
        int mapWidth = LatticeWidth(grid, cell), mapHeight = grid.Rows * cell;

        var lineHeight = Math.Max(text.LineHeight, TextSize) + 4;
        var swatch = (int)TextSize;
        var legendLeft = Margin + mapWidth + 2 * Margin;
        var legendWidth = swatch + 6 + entries.Max(e => text.Measure(e.Name));
        var width = (int)MathF.Ceiling(legendLeft + legendWidth + Margin);
        var height = 2 * Margin + (int)MathF.Ceiling(Math.Max(mapHeight, entries.Count * lineHeight));

        using var bitmap = PngFile.White(width, height);
        using (var canvas = new SKCanvas(bitmap))
        using (var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false })
        using (var outline = new SKPaint { Style = SKPaintStyle.Stroke, IsAntialias = false, Color = SKColors.DimGray, StrokeWidth = 1 })
        {
            for (var node = 0; node < labelMap.Length; node++)
            {
                fill.Color = Palettes.ForLabel(labelMap[node]);
                // A one-pixel white gap between squares keeps neighbouring nodes of one class countable.
                canvas.DrawRect(Margin + CellLeft(grid, node, cell), Margin + grid.Row(node) * cell, cell - 1, cell - 1, fill);
            }

            for (var i = 0; i < entries.Count; i++)
            {
                var top = Margin + i * lineHeight;
                var swatchTop = top + (lineHeight - 4 - swatch) / 2;
                fill.Color = entries[i].Color;
                canvas.DrawRect(legendLeft, swatchTop, swatch, swatch, fill);
                // Outlined so that pale colours (beige, mint) stand out from the white background.
                canvas.DrawRect(legendLeft, swatchTop, swatch - 1, swatch - 1, outline);
                text.Draw(canvas, entries[i].Name, legendLeft + swatch + 6, top + (lineHeight - 4 - text.LineHeight) / 2, SKColors.Black);
            }
        }
        PngFile.Save(bitmap, path);
    }

    /// <summary>One legend line per class (named or occurring), then "no samples" if any node is empty.</summary>
    private static List<(SKColor Color, string Name)> LegendEntries(ReadOnlySpan<int> labelMap, IReadOnlyList<string> classNames)
    {
        int maxLabel = -1;
        var anyEmpty = false;
        foreach (var label in labelMap)
        {
            maxLabel = Math.Max(maxLabel, label);
            anyEmpty |= label < 0;
        }

        var entries = new List<(SKColor, string)>();
        for (var label = 0; label < Math.Max(classNames.Count, maxLabel + 1); label++)
        {
            var name = label < classNames.Count ? classNames[label] : label.ToString(CultureInfo.InvariantCulture);
            entries.Add((Palettes.ForLabel(label), name));
        }
        if (anyEmpty || entries.Count == 0)
            entries.Add((Palettes.Unassigned, "no samples"));
        return entries;
    }

    private static void RequireLattice(int length, MapGrid grid, string name)
    {
        ArgumentNullException.ThrowIfNull(grid);
        if (length != grid.Nodes)
            throw new ArgumentException($"Expected {grid.Rows}x{grid.Cols} = {grid.Nodes} nodes, got {length}.", name);
    }
}
