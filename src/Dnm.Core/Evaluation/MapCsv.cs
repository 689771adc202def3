using System.Globalization;
using System.Text;
using Dnm.Core.IO;

namespace Dnm.Core.Evaluation;

/// <summary>
/// Where each image lands on a trained map, as CSV with header <c>index,key,label,class,row,col,distance</c>:
/// sample index, its label (empty when unknown), its BMU's lattice row and column, and the Euclidean
/// latent distance to that BMU. Meant for placing images on the map in external tools.
/// </summary>
public static class MapCsv
{
    public const string Header = "index,key,label,class,row,col,distance";

    /// <summary>
    /// Writes one line per sample, atomically (a reader sees the old file or the complete new one).
    /// <paramref name="labels"/> may be empty (no labels at all); a negative label is written as empty.
    /// </summary>
    /// <param name="key">The sample's key or path (<see cref="Data.IImageDataset.Key"/>), so a user finds where their own images landed; empty when null.</param>
    /// <param name="classNames">Names of the labels, written in the class column.</param>
    public static void Write(string path, ReadOnlySpan<int> bmu, ReadOnlySpan<float> distance, int rows, int cols, ReadOnlySpan<int> labels = default,
        Func<int, string>? key = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(cols);
        if (distance.Length != bmu.Length)
            throw new ArgumentException($"Expected {bmu.Length} distances, got {distance.Length}.", nameof(distance));
        if (!labels.IsEmpty && labels.Length != bmu.Length)
            throw new ArgumentException($"Expected {bmu.Length} labels (or none), got {labels.Length}.", nameof(labels));

        var nodes = rows * cols;
        using var file = new AtomicFileWriter(path);
        // No byte-order mark: CSV readers (pandas, awk) would take it as part of the first column name.
        using (var writer = new StreamWriter(file.Stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false), leaveOpen: true))
        {
            writer.NewLine = "\n";
            writer.WriteLine(Header);
            var line = new StringBuilder();
            for (var i = 0; i < bmu.Length; i++)
            {
                var node = bmu[i];
                if ((uint)node >= (uint)nodes)
                    throw new ArgumentOutOfRangeException(nameof(bmu), $"Node {node} of sample {i} is outside 0..{nodes - 1}.");
                line.Clear();
                line.Append(CultureInfo.InvariantCulture, $"{i},");
                if (key is not null) AppendField(line, key(i));
                line.Append(',');
                bool known = !labels.IsEmpty && labels[i] >= 0;
                if (known)
                    line.Append(CultureInfo.InvariantCulture, $"{labels[i]}");
                line.Append(',');
                if (known && classNames is not null && labels[i] < classNames.Count) AppendField(line, classNames[labels[i]]);
                // "R" writes the shortest text that parses back to the same float, with '.' as separator.
                line.Append(CultureInfo.InvariantCulture, $",{node / cols},{node % cols},{distance[i].ToString("R", CultureInfo.InvariantCulture)}");
                writer.WriteLine(line);
            }
        }
        file.Commit();
    }

    /// <summary>RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.</summary>
    private static void AppendField(StringBuilder line, string value)
    {
        if (value.AsSpan().IndexOfAny(",\"\r\n") < 0)
        {
            line.Append(value);
            return;
        }
        line.Append('"').Append(value.Replace("\"", "\"\"", StringComparison.Ordinal)).Append('"');
    }
}
