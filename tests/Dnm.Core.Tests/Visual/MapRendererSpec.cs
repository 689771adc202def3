using Dnm.Core.Data;
using Dnm.Core.Som;
using Dnm.Core.Visual;
using SkiaSharp;

namespace Dnm.Core.Tests.Visual;

public class MapRendererSpec
{
    [Fact]
    public void Should_lay_out_grey_prototypes_as_the_lattice_scaled_to_at_least_400_pixels()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("prototypes.png");
        // 2×2 map of 4×4 grey images: node 0 white, node 1 black, node 2 mid-grey, node 3 white.
        var shape = new ImageShape(1, 4, 4);
        float[] images = [.. Fill(16, 1f), .. Fill(16, 0f), .. Fill(16, 0.5f), .. Fill(16, 1f)];

        MapRenderer.RenderPrototypes(path, images, new MapGrid(2, 2), shape, cellPadding: 1);

        // Unscaled: 2 tiles of 4+1 pixels plus the leading padding = 11; scale ⌈400/11⌉ = 37 -> 407.
        using var png = PngAssert.Decode(path);
        Assert.Equal((407, 407), (png.Width, png.Height));
        PngAssert.Colour(SKColors.White, png, Centre(0, 4, 1, 37), Centre(0, 4, 1, 37));
        PngAssert.Colour(SKColors.Black, png, Centre(1, 4, 1, 37), Centre(0, 4, 1, 37));
        PngAssert.Colour(new SKColor(128, 128, 128), png, Centre(0, 4, 1, 37), Centre(1, 4, 1, 37));
        // The padding between tiles is neither of the tile colours.
        PngAssert.Colour(new SKColor(96, 96, 96), png, 5, 5);
        Assert.Equal(new[] { "prototypes.png" }, dir.FileNames());
    }

    [Fact]
    public void Should_draw_three_channel_prototypes_in_colour()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("rgb.png");
        // 1×2 map of 3×2×2 images (channel-first): node 0 pure red, node 1 pure blue.
        var shape = new ImageShape(3, 2, 2);
        float[] images = [.. Fill(4, 1f), .. Fill(8, 0f), .. Fill(8, 0f), .. Fill(4, 1f)];

        MapRenderer.RenderPrototypes(path, images, new MapGrid(1, 2), shape, cellPadding: 0);

        // Unscaled 4×2; scale 100 -> 400×200.
        using var png = PngAssert.Decode(path);
        Assert.Equal((400, 200), (png.Width, png.Height));
        PngAssert.Colour(SKColors.Red, png, 100, 100);
        PngAssert.Colour(SKColors.Blue, png, 300, 100);
    }

    [Fact]
    public void Should_reject_images_that_do_not_fill_the_lattice()
    {
        using var dir = new ScratchDirectory();
        Assert.Throws<ArgumentException>(() =>
            MapRenderer.RenderPrototypes(dir.File("x.png"), new float[15], new MapGrid(2, 2), new ImageShape(1, 2, 2)));
    }

    [Fact]
    public void Should_colour_label_map_cells_by_palette_and_draw_a_legend_with_text()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("labels.png");

        MapRenderer.RenderLabelMap(path, [0, 1, -1, 2], new MapGrid(2, 2), ["zero", "one", "two"]);

        using var png = PngAssert.Decode(path);
        AssertLabelMap(png);
    }

    [Fact]
    public void Should_keep_legend_text_visible_without_any_system_font()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("labels.png");
        using var pixelFont = new PixelFontPainter(MapRenderer.TextSize);

        MapRenderer.RenderLabelMap(path, [0, 1, -1, 2], new MapGrid(2, 2), ["zero", "one", "two"], pixelFont);

        using var png = PngAssert.Decode(path);
        AssertLabelMap(png);
    }

    [Fact]
    public void Should_list_labels_without_a_class_name_by_number()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("labels.png");

        // Label 24 has no name and wraps around the 20-colour palette to colour 4.
        MapRenderer.RenderLabelMap(path, [24, 0], new MapGrid(1, 2), ["zero"]);

        using var png = PngAssert.Decode(path);
        var cell = MapRenderer.CellSize(2);
        PngAssert.Colour(Palettes.Qualitative[4], png, MapRenderer.Margin + cell / 2, MapRenderer.Margin + cell / 2);
        // 25 legend lines (0..24) make the picture taller than the one-row map.
        Assert.True(png.Height > 25 * MapRenderer.TextSize, $"height {png.Height}");
    }

    [Fact]
    public void Should_colour_the_u_matrix_with_viridis_from_minimum_to_maximum()
    {
        using var dir = new ScratchDirectory();
        var path = dir.File("umatrix.png");
        // The 2×2 map of UMatrixSpec: u = 3, 4.5, 2.08, 3.58 -> node 1 is the maximum, node 2 the minimum.
        float[] w = [0, 0, 3, 4, 0, 1, 3, 0];

        MapRenderer.RenderUMatrix(path, w, new MapGrid(2, 2), dim: 2);

        using var png = PngAssert.Decode(path);
        var cell = MapRenderer.CellSize(2);
        int m = MapRenderer.Margin, mapWidth = 2 * cell;
        PngAssert.Colour(new SKColor(0xFD, 0xE7, 0x25), png, m + cell + cell / 2, m + cell / 2);
        PngAssert.Colour(new SKColor(0x44, 0x01, 0x54), png, m + cell / 2, m + cell + cell / 2);
        // Colour bar: maximum at the top, minimum at the bottom (inside its one-pixel outline).
        var barX = m + mapWidth + 2 * m + MapRenderer.ColourBarWidth / 2;
        PngAssert.Colour(new SKColor(0xFD, 0xE7, 0x25), png, barX, m + 1, tolerance: 3);
        PngAssert.Colour(new SKColor(0x44, 0x01, 0x54), png, barX, png.Height - m - 2, tolerance: 3);
        // The tick labels (4.5 and 2.081) are drawn right of the bar.
        var labelsLeft = m + mapWidth + 2 * m + MapRenderer.ColourBarWidth + 2;
        Assert.True(PngAssert.DarkPixels(png, labelsLeft, 0, png.Width, png.Height) > 20, "no tick label text found");
    }

    [Fact]
    public void Palette_should_hold_at_least_20_distinct_colours_none_of_them_the_empty_node_grey()
    {
        Assert.True(Palettes.Qualitative.Count >= 20);
        Assert.Equal(Palettes.Qualitative.Count, Palettes.Qualitative.Distinct().Count());
        Assert.DoesNotContain(Palettes.Unassigned, Palettes.Qualitative);
    }

    private static void AssertLabelMap(SKBitmap png)
    {
        var cell = MapRenderer.CellSize(2);
        int m = MapRenderer.Margin, centre = cell / 2;
        PngAssert.Colour(Palettes.Qualitative[0], png, m + centre, m + centre);
        PngAssert.Colour(Palettes.Qualitative[1], png, m + cell + centre, m + centre);
        PngAssert.Colour(Palettes.Unassigned, png, m + centre, m + cell + centre);
        PngAssert.Colour(Palettes.Qualitative[2], png, m + cell + centre, m + cell + centre);

        // Legend: swatches start 2 margins right of the map, names right of the swatches.
        var legendLeft = m + 2 * cell + 2 * m;
        Assert.True(png.Width > legendLeft + 40, $"width {png.Width} leaves no room for a legend");
        var swatchCentre = legendLeft + (int)MapRenderer.TextSize / 2;
        var firstSwatchRow = Enumerable.Range(0, png.Height).First(y => png.GetPixel(swatchCentre, y) == Palettes.Qualitative[0]);
        Assert.True(firstSwatchRow < m + 30, $"first legend swatch found at row {firstSwatchRow}");
        var textLeft = legendLeft + (int)MapRenderer.TextSize + 2;
        Assert.True(PngAssert.DarkPixels(png, textLeft, 0, png.Width, png.Height) > 50, "legend has no visible text");
    }

    private static float[] Fill(int count, float value) => Enumerable.Repeat(value, count).ToArray();

    /// <summary>Pixel coordinate of the middle of tile <paramref name="index"/> along one axis.</summary>
    private static int Centre(int index, int size, int padding, int scale) =>
        (padding + index * (size + padding) + size / 2) * scale + scale / 2;
}
