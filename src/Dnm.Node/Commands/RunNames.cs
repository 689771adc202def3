using System.Globalization;
using System.Text;

namespace Dnm.Node.Commands;

/// <summary>Names for run directories when --out is not given.</summary>
public static class RunNames
{
    /// <summary>runs/&lt;dataset&gt;-&lt;yyyyMMdd-HHmmss&gt;: one new folder per run, sortable by time.</summary>
    public static string DefaultOut(string dataset, DateTimeOffset now) =>
        Path.Combine("runs", $"{SafeName(dataset)}-{now.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}");

    /// <summary>
    /// A file-name-safe short name for a dataset spec: "mnist" stays, "folder:/data/coil20" becomes
    /// "coil20", "idx:/tmp/x/train-images.idx,labels.idx" becomes "train-images".
    /// </summary>
    public static string SafeName(string dataset)
    {
        var spec = dataset.Trim();
        var name = spec switch
        {
            _ when spec.StartsWith("folder:", StringComparison.Ordinal) => Path.GetFileName(spec["folder:".Length..].TrimEnd('/', '\\')),
            _ when spec.StartsWith("idx:", StringComparison.Ordinal) => StripExtensions(Path.GetFileName(spec["idx:".Length..].Split(',')[0].Trim())),
            _ => spec,
        };
        var safe = new StringBuilder(name.Length);
        foreach (var ch in name)
        {
            var ok = char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-';
            // Runs of unsafe characters become a single '-'.
            if (ok) safe.Append(ch);
            else if (safe.Length > 0 && safe[^1] != '-') safe.Append('-');
        }
        var result = safe.ToString().Trim('-', '.');
        if (result.Length > 40) result = result[..40].TrimEnd('-', '.');
        return result.Length == 0 ? "run" : result;
    }

    // "t10k-images-idx3-ubyte.gz" and "train.idx" should read as the data set, not its format.
    private static string StripExtensions(string file)
    {
        foreach (var ext in new[] { ".gz", ".idx", ".ubyte" })
            if (file.EndsWith(ext, StringComparison.OrdinalIgnoreCase)) file = file[..^ext.Length];
        return file;
    }
}
