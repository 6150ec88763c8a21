// SPDX-License-Identifier: UNLICENSED
// Deposit addresses without a private key per address. Each invoice gets the CREATE2 address of
// an EIP-1167 clone of `DepositForwarder`, computed off chain from the invoice's salt; nothing is
// deployed until there is something to sweep. The treasury is fixed when the factory is
// deployed and no function can change it: whoever calls, funds only ever move to it. Sweeping
// is limited to sweepers (the relay's hot wallets) so a stranger cannot move a payment before
// meshpay has read it; the admin manages sweepers and nothing else.
pragma solidity 0.8.37;

interface IERC20Minimal {
    function balanceOf(address owner) external view returns (uint256);
    function transfer(address to, uint256 value) external returns (bool);
}

/// The code every deposit clone delegates to. Its immutables live in its code, so a clone
/// (which runs this code in its own context) sees the same factory and treasury.
contract DepositForwarder {
    address public immutable factory;
    address public immutable treasury;

    /// One per asset moved (`token` = address(0) for the native coin), emitted by the deposit
    /// address itself: the receipt then says exactly what each deposit sent to the treasury,
    /// including coin paid in the same block before the sweep.
    event Flushed(address indexed token, uint256 amount);

    error NotFactory();
    error NativeTransferFailed();
    error TokenTransferFailed(address token);

    constructor(address treasury_) {
        factory = msg.sender;
        treasury = treasury_;
    }

    receive() external payable {}

    /// Moves this address's whole balance of each token, then of the native coin, to the
    /// treasury, with a `Flushed` event per asset moved. Empty balances are skipped, so a
    /// second flush is a no-op.
    function flush(address[] calldata tokens) external {
        if (msg.sender != factory) revert NotFactory();
        for (uint256 i = 0; i < tokens.length; ++i) {
            address token = tokens[i];
            uint256 amount = IERC20Minimal(token).balanceOf(address(this));
            if (amount == 0) continue;
            // Tolerates tokens that return nothing (USDT style) as well as `bool`.
            (bool ok, bytes memory ret) =
                token.call(abi.encodeCall(IERC20Minimal.transfer, (treasury, amount)));
            if (!ok || (ret.length != 0 && !abi.decode(ret, (bool)))) revert TokenTransferFailed(token);
            emit Flushed(token, amount);
        }
        uint256 native = address(this).balance;
        if (native != 0) {
            (bool sent,) = treasury.call{value: native}("");
            if (!sent) revert NativeTransferFailed();
            emit Flushed(address(0), native);
        }
    }
}

contract DepositFactory {
    address public immutable treasury;
    address public immutable admin;
    address public immutable implementation;
    mapping(address => bool) public sweepers;

    event SweeperSet(address indexed sweeper, bool allowed);
    event Deployed(bytes32 indexed salt, address forwarder);
    event Swept(bytes32 indexed salt, address forwarder);

    error NotAdmin();
    error NotSweeper();
    error ZeroAddress();
    error DeployFailed();

    constructor(address treasury_, address admin_, address[] memory sweepers_) {
        if (treasury_ == address(0) || admin_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        admin = admin_;
        implementation = address(new DepositForwarder(treasury_));
        for (uint256 i = 0; i < sweepers_.length; ++i) {
            sweepers[sweepers_[i]] = true;
            emit SweeperSet(sweepers_[i], true);
        }
    }

    function setSweeper(address sweeper, bool allowed) external {
        if (msg.sender != admin) revert NotAdmin();
        sweepers[sweeper] = allowed;
        emit SweeperSet(sweeper, allowed);
    }

    /// The deposit address of `salt`, deployed or not.
    function predict(bytes32 salt) public view returns (address) {
        bytes32 hash = keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(_cloneCode())));
        return address(uint160(uint256(hash)));
    }

    /// Deploys the forwarder of each salt that has no code yet, then flushes `tokens` and the
    /// native coin of each to the treasury. Idempotent: repeating it moves nothing.
    function sweep(bytes32[] calldata salts, address[] calldata tokens) external {
        if (!sweepers[msg.sender]) revert NotSweeper();
        for (uint256 i = 0; i < salts.length; ++i) {
            bytes32 salt = salts[i];
            address forwarder = predict(salt);
            if (forwarder.code.length == 0) {
                bytes memory code = _cloneCode();
                address deployed;
                assembly {
                    deployed := create2(0, add(code, 0x20), mload(code), salt)
                }
                if (deployed != forwarder) revert DeployFailed();
                emit Deployed(salt, forwarder);
            }
            DepositForwarder(payable(forwarder)).flush(tokens);
            emit Swept(salt, forwarder);
        }
    }

    /// EIP-1167 minimal proxy creation code delegating to `implementation`.
    function _cloneCode() internal view returns (bytes memory) {
        return abi.encodePacked(
            hex"3d602d80600a3d3981f3363d3d373d3d3d363d73", implementation, hex"5af43d82803e903d91602b57fd5bf3"
        );
    }
}
