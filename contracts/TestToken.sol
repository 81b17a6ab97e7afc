// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice The ERC-20 that countersign's embedded dev chain deploys (see
/// internal/chains/evm/devchain). Anyone may mint: it only ever lives on throw-away
/// development chains and must never be deployed anywhere that matters.
contract TestToken is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, string memory symbol_, uint8 decimals_) ERC20(name_, symbol_) {
        _decimals = decimals_;
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    /// @notice Mints `amount` (smallest unit) to `to`. Open to every caller on purpose.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
