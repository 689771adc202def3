using Dnm.Core.Som;
using Dnm.Core.Visual;
using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

/// <summary>hitmap.png, component-planes.png and the label palette.</summary>
public class MapPicturesSpec
{
    private static readonly SKColor ViridisLow = new(0x44, 0x01, 0x54);
    private static readonly SKColor ViridisHigh = new(0xFD, 0xE7, 0x25);

    [Fact]
    public void Hit_counts_should_count_each_node_as_bmu_and_reject_nodes_off_the_lattice()
    {
        Assert.Equal([0, 3, 0, 1], MapRenderer.HitCounts([1, 3, 1, 1], 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => MapRenderer.HitCounts([0, 4], 4));
    }

    [Fact]
    public void Hit_map_should_colour_nodes_by_their_counts_from_zero_and_write_each_count()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("hitmap.png");
        using var font = new PixelFontPainter(MapRenderer.TextSize);

        // 2x2 map, counts 0, 3, 0, 1: node 1 is the maximum, the empty nodes the minimum (0, not 1).
        MapRenderer.RenderHitMap(path, [1, 3, 1, 1], new MapGrid(2, 2), font);

        using var png = PngAssert.Decode(path);
        var cell = MapRenderer.CellSize(2);
        int m = MapRenderer.Margin;
        Assert.Equal(2 * m + 2 * cell, png.Height);
        Assert.True(png.Width > m + 2 * cell + 2 * m + MapRenderer.ColourBarWidth, $"width {png.Width} leaves no room for the colour bar");
        // Corners of the squares, away from the written counts.
        PngAssert.Colour(ViridisLow, png, m + 2, m + 2);
        PngAssert.Colour(ViridisHigh, png, m + cell + 2, m + 2);
        PngAssert.Colour(ViridisLow, png, m + 2, m + cell + 2);
        PngAssert.Colour(Palettes.Viridis(1 / 3.0), png, m + cell + 2, m + cell + 2);
        // "3" is drawn in black on the yellow node, "0" in white on the dark ones.
        Assert.True(PngAssert.DarkPixels(png, m + cell, m, m + 2 * cell, m + cell) > 5, "no count written on the fullest node");
        Assert.True(LightPixels(png, m, m, m + cell, m + cell) > 5, "no count written on an empty node");
    }

    [Fact]
    public void Component_planes_should_draw_one_lattice_per_latent_dimension_each_on_its_own_scale()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("component-planes.png");
        using var font = new PixelFontPainter(MapRenderer.PlaneTextSize);
        // 2x2 map, 3 dimensions: dimension 0 peaks at node 1, dimension 1 at node 2 (on a far larger scale), 2 is flat.
        float[] w =
        [
            0, 0, 7,
            1, 0, 7,
            0, 100, 7,
            0.5f, 50, 7,
        ];

        MapRenderer.RenderComponentPlanes(path, w, new MapGrid(2, 2), dim: 3, font);

        using var png = PngAssert.Decode(path);
        // Three planes in a 2x2 grid; each plane 2 nodes of ⌈160/2⌉ = 80 pixels, its title 18 pixels above it.
        var (m, cell, plane, title) = (MapRenderer.Margin, 80, 160, MapRenderer.PlaneTitleHeight);
        Assert.Equal((2 * m + 2 * plane + m, 2 * m + 2 * (title + plane) + m), (png.Width, png.Height));
        int Left(int k) => m + k % 2 * (plane + m);
        int Top(int k) => m + k / 2 * (title + plane + m) + title;
        void Node(int k, int node, SKColor colour) => PngAssert.Colour(colour, png, Left(k) + node % 2 * cell + cell / 2, Top(k) + node / 2 * cell + cell / 2);

        Node(0, 1, ViridisHigh);
        Node(0, 0, ViridisLow);
        Node(0, 3, Palettes.Viridis(0.5));
        Node(1, 2, ViridisHigh);
        Node(1, 3, Palettes.Viridis(0.5));
        Node(1, 1, ViridisLow);
        Node(2, 0, Palettes.Viridis(0.5));
        // Each plane has its title above it.
        Assert.True(PngAssert.DarkPixels(png, Left(1), Top(1) - title, Left(1) + plane, Top(1)) > 10, "plane 1 has no title");
        // The fourth grid place stays empty.
        PngAssert.Colour(SKColors.White, png, Left(3) + plane / 2, Top(3) + plane / 2);
    }

    [Fact]
    public void Component_planes_should_refuse_more_dimensions_than_fit_in_one_picture()
    {
        using var dir = new ScratchDirectory();
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            MapRenderer.RenderComponentPlanes(dir.File("x.png"), new float[4 * 17], new MapGrid(2, 2), MapRenderer.MaxComponentPlanes + 1));
    }

    [Fact]
    public void The_first_ten_label_colours_should_be_told_apart_with_normal_vision_and_with_colour_blindness()
    {
        var ten = Palettes.Qualitative.Take(10).ToArray();
        // CIEDE2000: about 1 is a just-noticeable difference, 10 or more reads as a different colour at a glance. The
        // old palette (Trubetskoy's) had 16.7 here and 1.3 for a protanope; Tableau 10 has 18.1 and 0.7 (deuteranope).
        Assert.True(MinimumDifference(ten, c => c) >= 20, $"closest pair: {MinimumDifference(ten, c => c):F1}");
        foreach (var (name, simulate) in ColourVision.Deficiencies)
        {
            var seen = MinimumDifference(ten, simulate);
            Assert.True(seen >= 10, $"with {name} the closest pair is {seen:F1} apart");
        }
        Assert.All(ten, c => Assert.True(ColourVision.Ciede2000(c, Palettes.Unassigned) >= 10, $"{c} is close to the empty-node grey"));
    }

    [Theory]
    // Sharma, Wu and Dalal (2005), test pairs 1, 7 and 17.
    [InlineData(50, 2.6772, -79.7751, 50, 0, -82.7485, 2.0425)]
    [InlineData(50, 0, 0, 50, -1, 2, 2.3669)]
    [InlineData(50, 2.5, 0, 73, 25, -18, 27.1492)]
    public void The_colour_difference_should_match_the_published_ciede2000_test_data(double l1, double a1, double b1, double l2, double a2, double b2, double expected) =>
        Assert.Equal(expected, ColourVision.Ciede2000((l1, a1, b1), (l2, a2, b2)), 4);

    private static double MinimumDifference(SKColor[] colours, Func<SKColor, SKColor> seenAs)
    {
        var min = double.MaxValue;
        for (var i = 0; i < colours.Length; i++)
            for (var j = i + 1; j < colours.Length; j++)
                min = Math.Min(min, ColourVision.Ciede2000(seenAs(colours[i]), seenAs(colours[j])));
        return min;
    }

    private static int LightPixels(SKBitmap bitmap, int left, int top, int right, int bottom)
    {
        var count = 0;
        for (var y = top; y < bottom; y++)
            for (var x = left; x < right; x++)
                if (bitmap.GetPixel(x, y) is { Red: > 200, Green: > 200, Blue: > 200 }) count++;
        return count;
    }
}
