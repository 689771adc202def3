using SkiaSharp;

namespace Dnm.Core.Visual;

/// <summary>Draws short labels (legends, colour-bar ticks) onto a canvas.</summary>
internal interface ITextPainter : IDisposable
{
    /// <summary>Height of a line of text in pixels, ascent to descent.</summary>
    float LineHeight { get; }

    float Measure(string text);

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (<paramref name="x"/>, <paramref name="top"/>).</summary>
    void Draw(SKCanvas canvas, string text, float x, float top, SKColor color);
}

/// <summary>Picks how to draw text on this machine.</summary>
internal static class TextPainter
{
    // Where Debian, Ubuntu, Fedora and Arch put a sans-serif font when one is installed.
    private static readonly string[] KnownFonts =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    ];

    private static readonly string[] FontDirectories = ["/usr/share/fonts", "/usr/local/share/fonts"];

    /// <summary>
    /// A painter with text of <paramref name="size"/> pixels. The Linux "NoDependencies" build of Skia
    /// has no fontconfig, so its default typeface can be an arbitrary font or an empty one that draws
    /// nothing. Hence: a known sans-serif file, else Skia's default if it has glyphs, else any font file
    /// under the usual directories, and on a machine without any font a built-in 5×7 pixel font that
    /// keeps the legend readable.
    /// </summary>
    public static ITextPainter Create(float size, bool useSystemFonts = true)
    {
        if (useSystemFonts)
        {
            var typeface = FindTypeface();
            if (typeface is not null)
                return new TypefacePainter(typeface, size);
        }
        return new PixelFontPainter(size);
    }

    private static SKTypeface? FindTypeface()
    {
        // A known sans-serif first: Skia's own default is whichever font its directory scan met first
        // (on Debian, "DejaVu Math TeX Gyre"), which is legible but looks out of place in a legend.
        var known = LoadFirstUsable(KnownFonts);
        if (known is not null)
            return known;
        if (IsUsable(SKTypeface.Default))
            return SKTypeface.Default;
        return LoadFirstUsable(FontFiles());
    }

    private static SKTypeface? LoadFirstUsable(IEnumerable<string> files)
    {
        foreach (var file in files)
        {
            if (!File.Exists(file))
                continue;
            var typeface = SKTypeface.FromFile(file);
            if (IsUsable(typeface))
                return typeface;
            typeface?.Dispose();
        }
        return null;
    }

    private static IEnumerable<string> FontFiles() =>
        FontDirectories.Where(Directory.Exists)
            .SelectMany(d => Directory.EnumerateFiles(d, "*.ttf", SearchOption.AllDirectories))
            .OrderBy(f => Path.GetFileName(f).Contains("Sans", StringComparison.OrdinalIgnoreCase) ? 0 : 1)
            .ThenBy(f => f, StringComparer.Ordinal);

    private static bool IsUsable(SKTypeface? typeface)
    {
        if (typeface is null || typeface.GlyphCount == 0)
            return false;
        using var font = new SKFont(typeface);
        return font.ContainsGlyphs("Ag0");
    }

    private sealed class TypefacePainter : ITextPainter
    {
        private readonly SKTypeface _typeface;
        private readonly SKPaint _paint;
        private readonly float _ascent;

        public TypefacePainter(SKTypeface typeface, float size)
        {
            _typeface = typeface;
            _paint = new SKPaint { Typeface = typeface, TextSize = size, IsAntialias = true };
            var metrics = _paint.FontMetrics;
            _ascent = -metrics.Ascent;
            LineHeight = metrics.Descent - metrics.Ascent;
        }

        public float LineHeight { get; }

        public float Measure(string text) => _paint.MeasureText(text);

        public void Draw(SKCanvas canvas, string text, float x, float top, SKColor color)
        {
            _paint.Color = color;
            canvas.DrawText(text, x, top + _ascent, _paint);
        }

        public void Dispose()
        {
            _paint.Dispose();
            // SKTypeface.Default is shared by the whole process; only a typeface loaded here is ours.
            if (!ReferenceEquals(_typeface, SKTypeface.Default))
                _typeface.Dispose();
        }
    }
}
