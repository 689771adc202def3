using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Dnm.Core.Config;

/// <summary>How the denoising autoencoder corrupts its input (Vincent et al., 2008).</summary>
public enum NoiseKind
{
    /// <summary>The plain autoencoder: the input is the clean image.</summary>
    None,
    /// <summary>x̃ = x + σ·N(0, 1) per pixel, not clipped.</summary>
    Gaussian,
    /// <summary>Each pixel is set to 0 with probability p.</summary>
    Masking,
}

/// <summary>
/// The `denoise` key, parsed once at the config edge: <c>none</c>, <c>gaussian:σ</c> (σ &gt; 0) or <c>masking:p</c>
/// (0 &lt; p &lt; 1). In JSON and on the command line it is that one word. See <see cref="Data.ImageCorruption"/>.
/// </summary>
[JsonConverter(typeof(NoiseSpecJsonConverter))]
public sealed record NoiseSpec(NoiseKind Kind, double Amount)
{
    public static readonly NoiseSpec None = new(NoiseKind.None, 0);

    public bool Enabled => Kind != NoiseKind.None;

    /// <summary>Parses <paramref name="text"/>; a bad value is one <see cref="ConfigException"/> naming <paramref name="key"/> and the forms.</summary>
    public static NoiseSpec Parse(string key, string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "none") return None;
        var colon = t.IndexOf(':', StringComparison.Ordinal);
        var kind = colon < 0 ? t : t[..colon];
        var parsed = kind switch { "gaussian" => NoiseKind.Gaussian, "masking" => NoiseKind.Masking, _ => (NoiseKind?)null };
        if (parsed is { } k && colon > 0
            && double.TryParse(t[(colon + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var amount)
            && new NoiseSpec(k, amount).Problem(key) is null)
            return new NoiseSpec(k, amount);
        throw new ConfigException($"{key} '{text}' is not none, gaussian:σ (σ > 0, e.g. gaussian:0.3) or masking:p (0 < p < 1, e.g. masking:0.25)");
    }

    /// <summary>What is wrong with a value built in code (not parsed), or null.</summary>
    public string? Problem(string key) => Kind switch
    {
        NoiseKind.None => null,
        NoiseKind.Gaussian when Amount > 0 && double.IsFinite(Amount) => null,
        NoiseKind.Masking when Amount is > 0 and < 1 => null,
        NoiseKind.Gaussian => $"{key} gaussian:σ needs σ > 0, got {Amount.ToString(CultureInfo.InvariantCulture)}",
        NoiseKind.Masking => $"{key} masking:p needs 0 < p < 1, got {Amount.ToString(CultureInfo.InvariantCulture)}",
        _ => KebabEnum.Problem<NoiseKind>(key, Kind.ToString()),
    };

    public override string ToString() => Enabled ? $"{KebabEnum.Name(Kind)}:{Amount.ToString("R", CultureInfo.InvariantCulture)}" : "none";
}

/// <summary>JSON: a <see cref="NoiseSpec"/> is its one word ("none", "gaussian:0.3").</summary>
public sealed class NoiseSpecJsonConverter : JsonConverter<NoiseSpec>
{
    public override NoiseSpec Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String
            ? NoiseSpec.Parse("denoise", reader.GetString()!)
            : throw new ConfigException("denoise must be a string: none, gaussian:σ or masking:p");

    public override void Write(Utf8JsonWriter writer, NoiseSpec value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}
