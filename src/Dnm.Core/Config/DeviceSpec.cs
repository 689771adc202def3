namespace Dnm.Core.Config;

/// <summary>A parsed --device value: auto, cpu, cuda or cuda:N.</summary>
public sealed record DeviceSpec(string Kind, int? Index)
{
    public static DeviceSpec Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t is "auto" or "cpu" or "cuda") return new DeviceSpec(t, null);
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var i) && i >= 0)
            return new DeviceSpec("cuda", i);
        throw new ConfigException($"device '{text}' is not one of auto, cpu, cuda, cuda:N");
    }

    public override string ToString() => Index is { } i ? $"{Kind}:{i}" : Kind;
}
